# The cluster add-ons SpinKube needs, in the order of its install guide ("Installing with
# Helm"): cert-manager (for spin-operator's admission webhooks), runtime-class-manager and the
# Shim that installs containerd-shim-spin on the nodes labelled spin=true, then spin-operator's
# CRDs and spin-operator. And the app's namespaces.
#
# Manifests that are not Helm charts (the Shim, spin-operator's CRDs) go through the local chart
# charts/manifests, which renders the YAML it is given verbatim: unlike kubernetes_manifest, a
# helm_release needs no API server at plan time, so a first `tofu apply` can create the cluster
# and its add-ons together.

resource "helm_release" "cert_manager" {
  name             = "cert-manager"
  namespace        = "cert-manager"
  create_namespace = true
  repository       = "https://charts.jetstack.io"
  chart            = "cert-manager"
  version          = local.cert_manager_version
  wait             = true
  timeout          = 600

  set {
    name  = "crds.enabled"
    value = "true"
  }
}

resource "helm_release" "runtime_class_manager" {
  name             = "runtime-class-manager"
  namespace        = "runtime-class-manager"
  create_namespace = true
  repository       = "oci://ghcr.io/spinframework/charts"
  chart            = "runtime-class-manager"
  version          = local.runtime_class_manager_chart_version
  wait             = true

  depends_on = [helm_release.cert_manager]
}

# containerd-shim-spin on the spin=true nodes, and RuntimeClass wasmtime-spin-v2: the file
# operators applied by hand, unchanged (its version is pinned there).
resource "helm_release" "shim" {
  name      = "spin-shim"
  namespace = "runtime-class-manager"
  chart     = "${path.module}/charts/manifests"
  values    = [yamlencode({
    manifests = file("${path.module}/../../../cluster/shim-spin.yaml")
  })]

  depends_on = [helm_release.runtime_class_manager]
}

# spin-operator's CRDs (SpinApp, SpinAppExecutor), from its release at the pinned version.
data "http" "spin_operator_crds" {
  url = "https://github.com/spinframework/spin-operator/releases/download/v${local.spin_operator_version}/spin-operator.crds.yaml"

  lifecycle {
    postcondition {
      condition     = self.status_code == 200
      error_message = "Could not download spin-operator's CRDs v${local.spin_operator_version}."
    }
  }
}

resource "helm_release" "spin_operator_crds" {
  name             = "spin-operator-crds"
  namespace        = "spin-operator"
  create_namespace = true
  chart            = "${path.module}/charts/manifests"
  values           = [yamlencode({
    manifests = data.http.spin_operator_crds.response_body
  })]
}

resource "helm_release" "spin_operator" {
  name             = "spin-operator"
  namespace        = "spin-operator"
  create_namespace = true
  repository       = "oci://ghcr.io/spinframework/charts"
  chart            = "spin-operator"
  version          = local.spin_operator_version
  wait             = true

  depends_on = [helm_release.cert_manager, helm_release.spin_operator_crds, helm_release.shim]
}

# External Secrets Operator, with its CRDs: it makes the app's Kubernetes Secrets from Secret
# Manager (deploy/external-secrets), reading as the Google service account of module secrets
# through Workload Identity. Chosen over the Secret Manager CSI driver because the SpinApp
# reads Secrets by name (secretKeyRef, runtimeConfig.loadFromSecret, the executor's CA bundle)
# and has no field for a CSI volume; the CSI driver only makes Secrets as a side effect of a pod
# that mounts the volume.
resource "helm_release" "external_secrets" {
  name             = "external-secrets"
  namespace        = "external-secrets"
  create_namespace = true
  repository       = "https://charts.external-secrets.io"
  chart            = "external-secrets"
  version          = local.external_secrets_chart_version
  wait             = true

  set {
    name  = "installCRDs"
    value = "true"
  }
}

# The app's namespace; deploy/overlays/<env> fills it.
resource "kubernetes_namespace_v1" "app" {
  metadata {
    name = var.app_namespace
    labels = {
      "app.kubernetes.io/part-of" = "license-edge"
    }
  }
}

# `tofu plan` on pull requests refreshes these Helm releases, which Helm keeps as Secrets in the
# releases' namespaces. The read-only planner (module ci-identity) may read those and nothing
# else in the cluster beyond what roles/container.viewer gives: no Secret of the app's namespace.
locals {
  helm_namespaces = toset(["cert-manager", "runtime-class-manager", "spin-operator", "external-secrets"])
}

resource "kubernetes_role_v1" "helm_release_reader" {
  for_each = length(var.planner_service_accounts) > 0 ? local.helm_namespaces : toset([])
  metadata {
    name      = "helm-release-reader"
    namespace = each.value
  }
  rule {
    api_groups = [""]
    resources  = ["secrets"]
    verbs      = ["get", "list"]
  }

  depends_on = [helm_release.cert_manager, helm_release.runtime_class_manager, helm_release.spin_operator_crds, helm_release.external_secrets]
}

resource "kubernetes_role_binding_v1" "helm_release_reader" {
  for_each = kubernetes_role_v1.helm_release_reader
  metadata {
    name      = "helm-release-reader"
    namespace = each.value.metadata[0].namespace
  }
  role_ref {
    api_group = "rbac.authorization.k8s.io"
    kind      = "Role"
    name      = each.value.metadata[0].name
  }
  dynamic "subject" {
    for_each = var.planner_service_accounts
    content {
      # GKE names a Google identity by its email in Kubernetes RBAC.
      api_group = "rbac.authorization.k8s.io"
      kind      = "User"
      name      = subject.value
    }
  }
}
