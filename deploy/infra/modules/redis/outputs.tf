output "name" {
  value = google_redis_instance.redis.name
}

output "host" {
  value = google_redis_instance.redis.host
}

output "port" {
  description = "6378 with in-transit encryption."
  value       = google_redis_instance.redis.port
}

output "server_ca_certs" {
  description = "The instance's server CA certificates (public), for the CA bundle Spin verifies Redis with."
  value       = join("", [for c in google_redis_instance.redis.server_ca_certs : c.cert])
}
