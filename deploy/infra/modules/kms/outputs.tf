output "key_ring" {
  value = google_kms_key_ring.ring.id
}

output "signing_key" {
  description = "The signing key; its versions sign (projects/.../cryptoKeys/token-signing)."
  value       = google_kms_crypto_key.signing.id
}

output "signer_service_account" {
  value = google_service_account.signer.email
}

output "gke_secrets_key" {
  value = google_kms_crypto_key.gke_secrets.id
}
