output "name" {
  value = google_container_cluster.cluster.name
}

output "location" {
  value = google_container_cluster.cluster.location
}

output "dns_endpoint" {
  description = "The control plane's DNS-based endpoint (IAM-authenticated)."
  value       = google_container_cluster.cluster.control_plane_endpoints_config[0].dns_endpoint_config[0].endpoint
}

output "nodes_service_account" {
  value = google_service_account.nodes.email
}

output "workload_pool" {
  value = "${var.project_id}.svc.id.goog"
}
