output "network_id" {
  value = google_compute_network.vpc.id
}

output "network_name" {
  value = google_compute_network.vpc.name
}

output "subnet_id" {
  value = google_compute_subnetwork.nodes.id
}

output "pods_range_name" {
  value = "pods"
}

output "services_range_name" {
  value = "services"
}

output "private_services_range_name" {
  description = "The private services access range Cloud SQL and Memorystore allocate from."
  value       = google_compute_global_address.private_services.name
}

output "private_services_connection" {
  description = "The peering; instances that use private services access depend on it."
  value       = google_service_networking_connection.private_services.id
}
