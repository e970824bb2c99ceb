# Cloud KMS for one environment: a key ring holding
#   - the token signing key (EC_SIGN_ED25519, the EdDSA the app's tokens use), for the issue
#     "Signing in Cloud KMS: the private key never inside a pod". Only the signer's service
#     account may sign with it, and it may do nothing else; the private key never leaves KMS.
#   - the key GKE encrypts Kubernetes Secrets with in etcd (application-layer encryption).
# Key rings and keys cannot be deleted in Cloud KMS (only their versions destroyed), so both
# keys refuse `tofu destroy` too.

data "google_project" "project" {
  project_id = var.project_id
}

resource "google_kms_key_ring" "ring" {
  project  = var.project_id
  name     = var.name
  location = var.location
}

resource "google_kms_crypto_key" "signing" {
  #checkov:skip=CKV_GCP_43:Cloud KMS does not rotate asymmetric keys automatically; a new version is rotated in by hand with the JWKS overlap of deploy/README.md ("Rotating keys")
  name     = "token-signing"
  key_ring = google_kms_key_ring.ring.id
  purpose  = "ASYMMETRIC_SIGN"

  version_template {
    algorithm        = "EC_SIGN_ED25519"
    protection_level = var.signing_protection_level
  }

  lifecycle {
    prevent_destroy = true
  }
}

# The signer: its Kubernetes ServiceAccount (the app's) impersonates it through Workload Identity.
resource "google_service_account" "signer" {
  project      = var.project_id
  account_id   = "${var.name}-signer"
  display_name = "license-edge token signer (${var.name})"
}

resource "google_service_account_iam_member" "signer_workload_identity" {
  service_account_id = google_service_account.signer.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.workload_pool}[${var.signer_kubernetes_service_account}]"
}

# The signer may sign with this key and do nothing else: a custom role holding the one
# permission asymmetricSign needs (roles/cloudkms.signer would add locations and project reads),
# bound authoritatively on this key only, so nobody else holds it here through key-level IAM.
# It cannot read the public key (operators fetch it with their own identity for the JWKS:
# deploy/README.md, "Signing in Cloud KMS"), list keys, or touch the other key of the ring.
resource "google_project_iam_custom_role" "token_signer" {
  project     = var.project_id
  role_id     = replace("${var.name}_token_signer", "-", "_")
  title       = "license-edge token signer (${var.name})"
  description = "cryptoKeyVersions.asymmetricSign on the token-signing key, nothing else."
  permissions = ["cloudkms.cryptoKeyVersions.useToSign"]
}

resource "google_kms_crypto_key_iam_binding" "signer" {
  crypto_key_id = google_kms_crypto_key.signing.id
  role          = google_project_iam_custom_role.token_signer.id
  members       = ["serviceAccount:${google_service_account.signer.email}"]
}

# GKE application-layer Secrets encryption.
resource "google_kms_crypto_key" "gke_secrets" {
  name            = "gke-secrets"
  key_ring        = google_kms_key_ring.ring.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = "7776000s" # 90 days

  lifecycle {
    prevent_destroy = true
  }
}

resource "google_kms_crypto_key_iam_binding" "gke_secrets" {
  crypto_key_id = google_kms_crypto_key.gke_secrets.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  members       = [
    "serviceAccount:service-${data.google_project.project.number}@container-engine-robot.iam.gserviceaccount.com",
  ]
}
