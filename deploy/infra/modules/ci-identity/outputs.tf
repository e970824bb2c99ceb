output "workload_identity_provider" {
  description = "For google-github-actions/auth's workload_identity_provider."
  value       = google_iam_workload_identity_pool_provider.github.name
}

output "deployer_service_account" {
  value = google_service_account.deployer.email
}

output "planner_service_account" {
  value = var.pull_request_planner ? google_service_account.planner[0].email : null
}
