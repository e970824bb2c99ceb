output "instance_name" {
  value = google_sql_database_instance.postgres.name
}

output "connection_name" {
  value = google_sql_database_instance.postgres.connection_name
}

output "private_ip" {
  value = google_sql_database_instance.postgres.private_ip_address
}

output "dns_name" {
  description = "The name the server certificate carries; clients connect by it to verify the server."
  value       = trimsuffix(google_sql_database_instance.postgres.dns_name, ".")
}
