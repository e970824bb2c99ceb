# One-time bootstrap of a Google Cloud project for license-edge: the APIs the environments use
# and the versioned bucket that keeps their OpenTofu state. It keeps its own state locally
# (terraform.tfstate here, gitignored): it is small, rarely changes, and cannot keep its state
# in the bucket it creates. deploy/README.md, "Bootstrap", has the commands.

terraform {
  required_version = ">= 1.8.0"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.40"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

resource "google_project_service" "apis" {
  for_each = toset([
    "artifactregistry.googleapis.com",
    "cloudkms.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "dns.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "redis.googleapis.com",
    "secretmanager.googleapis.com",
    "servicenetworking.googleapis.com",
    "sqladmin.googleapis.com",
    "sts.googleapis.com",
  ])
  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# The state of every environment, under prefix license-edge/<env>. Versioned, so a bad write can
# be rolled back; the state holds the Memorystore AUTH string, so access is by IAM only, never
# public.
resource "google_storage_bucket" "state" {
  #checkov:skip=CKV_GCP_62:Access logs of the state bucket would go to another bucket to create and guard; Cloud Audit Logs (Data Access) can record reads instead
  project                     = var.project_id
  name                        = var.state_bucket
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  # Keep the last 20 versions of each state file.
  lifecycle_rule {
    condition {
      num_newer_versions = 20
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  lifecycle {
    prevent_destroy = true
  }
}
