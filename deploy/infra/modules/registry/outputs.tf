output "path" {
  description = "REGION-docker.pkg.dev/PROJECT/REPOSITORY: prefix of the app's image reference."
  value       = "${var.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.app.repository_id}"
}

output "repository_id" {
  value = google_artifact_registry_repository.app.id
}
