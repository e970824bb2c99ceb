output "state_bucket" {
  description = "Pass to each environment's `tofu init -backend-config=bucket=...`."
  value       = google_storage_bucket.state.name
}
