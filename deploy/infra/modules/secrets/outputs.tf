output "secret_ids" {
  description = "Secret Manager secret ids, by short name."
  value       = { for k, s in google_secret_manager_secret.secret : k => s.secret_id }
}

output "reader_service_account" {
  value = google_service_account.reader.email
}
