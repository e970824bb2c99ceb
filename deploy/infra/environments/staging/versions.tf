# Providers and the remote state. The state lives in the bucket deploy/infra/bootstrap made,
# under its own prefix; the bucket's name is given at init (a backend block takes no variables):
#   tofu -chdir=deploy/infra/environments/ENV init -backend-config="bucket=$STATE_BUCKET"
# Commit the .terraform.lock.hcl the first init writes: it pins each provider's exact version
# and checksums.
terraform {
  required_version = ">= 1.8.0"

  backend "gcs" {
    prefix = "license-edge/staging"
  }

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.40"
    }
    helm = {
      source  = "hashicorp/helm"
      version = "~> 2.17"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 2.36"
    }
    http = {
      source  = "hashicorp/http"
      version = "~> 3.4"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

# The add-ons reach the cluster through its DNS-based endpoint with this identity's token
# (the control plane has no public IP endpoint).
data "google_client_config" "current" {}

provider "helm" {
  kubernetes {
    host  = "https://${module.cluster.dns_endpoint}"
    token = data.google_client_config.current.access_token
  }
}

provider "kubernetes" {
  host  = "https://${module.cluster.dns_endpoint}"
  token = data.google_client_config.current.access_token
}
