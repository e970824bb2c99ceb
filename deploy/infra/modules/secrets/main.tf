# Secret Manager: the secrets the app and the migration Job read, and who may read them.
# Only the secrets are created here, never their versions: a version's value would be kept in
# the OpenTofu state. Each value is added once by an operator (deploy/README.md, "Secret
# values"):
#   gcloud secrets versions add SECRET --data-file=-   (value on standard input)
#
# One reader: a service account that Kubernetes ServiceAccount NAMESPACE/license-edge-secrets
# acts as through Workload Identity. External Secrets Operator reads as that ServiceAccount
# (deploy/external-secrets: the SecretStore's workloadIdentity.serviceAccountRef) and makes the
# Kubernetes Secrets the app reads.

resource "google_secret_manager_secret" "secret" {
  #checkov:skip=CKV_GCP_128:Google-managed encryption keys; the values are the app's own credentials, and their reader is limited per secret below
  for_each  = var.secrets
  project   = var.project_id
  secret_id = "${var.prefix}-${each.key}"

  replication {
    user_managed {
      replicas {
        location = var.location
      }
    }
  }

  labels = {
    app         = "license-edge"
    environment = var.environment
  }

  annotations = {
    purpose = each.value
  }
}

resource "google_service_account" "reader" {
  project      = var.project_id
  account_id   = "${var.service_account_prefix}-secrets"
  display_name = "Reads license-edge's Secret Manager secrets (${var.environment})"
}

resource "google_service_account_iam_member" "reader_workload_identity" {
  service_account_id = google_service_account.reader.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.workload_pool}[${var.reader_kubernetes_service_account}]"
}

# Per secret, not per project: the reader sees these secrets and no other.
resource "google_secret_manager_secret_iam_member" "reader" {
  for_each  = google_secret_manager_secret.secret
  project   = var.project_id
  secret_id = each.value.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.reader.email}"
}
