# Artifact Registry for the app's OCI artifact (`spin registry push`). Tags are immutable: the
# pipeline tags each push with its commit, and deploys by digest.

resource "google_artifact_registry_repository" "app" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption: the artifact is the public app's compiled code and holds no secret; a CMEK key adds a key to rotate and nothing to protect
  project       = var.project_id
  location      = var.location
  repository_id = var.name
  format        = "DOCKER"
  description   = "license-edge: the Spin app's OCI artifacts"

  docker_config {
    immutable_tags = true
  }

  labels = {
    app = "license-edge"
  }
}

resource "google_artifact_registry_repository_iam_member" "writers" {
  for_each   = toset(var.writers)
  project    = var.project_id
  location   = var.location
  repository = google_artifact_registry_repository.app.name
  role       = "roles/artifactregistry.writer"
  member     = each.value
}

resource "google_artifact_registry_repository_iam_member" "readers" {
  for_each   = toset(var.readers)
  project    = var.project_id
  location   = var.location
  repository = google_artifact_registry_repository.app.name
  role       = "roles/artifactregistry.reader"
  member     = each.value
}
