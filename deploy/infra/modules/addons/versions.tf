# The cluster add-ons' versions, one place each. deploy/README.md's "Versions" table states the
# same versions, and tests/infra checks that the two agree. containerd-shim-spin's version lives
# in deploy/cluster/shim-spin.yaml, which this module applies as it is.
locals {
  cert_manager_version                = "v1.20.0"
  runtime_class_manager_chart_version = "0.2.0"
  spin_operator_version               = "0.6.1"
  external_secrets_chart_version      = "2.9.0"
}

terraform {
  required_providers {
    helm = {
      source = "hashicorp/helm"
    }
    kubernetes = {
      source = "hashicorp/kubernetes"
    }
    http = {
      source = "hashicorp/http"
    }
  }
}
