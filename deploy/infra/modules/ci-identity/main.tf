# GitHub Actions' identity in Google Cloud, with Workload Identity Federation: a workflow job
# exchanges its GitHub OIDC token for short-lived Google credentials. No service-account key
# exists anywhere, in the repository's secrets or elsewhere.
#
# Two service accounts per environment, each impersonable only by the jobs it serves (the
# token's subject names the repository and the job's GitHub environment or event):
#   deployer: jobs of GitHub environment ENV: pushes the app (staging), applies manifests;
#   planner:  pull-request jobs (staging only): reads what `tofu plan` must refresh.

locals {
  # GitHub's subject claim for a job that runs in GitHub environment ENV, and for a pull request.
  deployer_subject = "repo:${var.github_repository}:environment:${var.environment}"
  planner_subject  = "repo:${var.github_repository}:pull_request"
  subjects         = concat(
    [local.deployer_subject],
    var.pull_request_planner ? [local.planner_subject] : [],
  )
}

resource "google_iam_workload_identity_pool" "github" {
  project                   = var.project_id
  workload_identity_pool_id = "github-${var.environment}"
  display_name              = "GitHub Actions (${var.environment})"
}

resource "google_iam_workload_identity_pool_provider" "github" {
  #checkov:skip=CKV_GCP_125:The condition compares assertion.sub with exact repo:OWNER/REPO:environment:ENV subjects, built from variables checkov does not evaluate; tests/infra checks its shape
  project                            = var.project_id
  workload_identity_pool_id          = google_iam_workload_identity_pool.github.workload_identity_pool_id
  workload_identity_pool_provider_id = "github"
  display_name                       = "GitHub OIDC"

  attribute_mapping = {
    "google.subject"       = "assertion.sub"
    "attribute.repository" = "assertion.repository"
    "attribute.ref"        = "assertion.ref"
  }
  # Tokens of this repository's jobs that this environment serves, and no other: the subject
  # names the repository and the job's GitHub environment (or the pull-request event).
  attribute_condition = join(" || ", [for s in local.subjects : "assertion.sub == '${s}'"])

  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

locals {
  pool = google_iam_workload_identity_pool.github.name
}

resource "google_service_account" "deployer" {
  project      = var.project_id
  account_id   = "${var.name}-deployer"
  display_name = "GitHub Actions deployer (${var.environment})"
}

resource "google_service_account_iam_member" "deployer" {
  service_account_id = google_service_account.deployer.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principal://iam.googleapis.com/${local.pool}/subject/${local.deployer_subject}"
}

# Apply manifests in the cluster (Kubernetes RBAC through IAM). Registry rights are granted on
# the repository itself (module registry).
resource "google_project_iam_member" "deployer" {
  for_each = toset(["roles/container.developer"])
  project  = var.project_id
  role     = each.value
  member   = "serviceAccount:${google_service_account.deployer.email}"
}

resource "google_service_account" "planner" {
  count        = var.pull_request_planner ? 1 : 0
  project      = var.project_id
  account_id   = "${var.name}-planner"
  display_name = "GitHub Actions tofu plan on pull requests (${var.environment}, read-only)"
}

resource "google_service_account_iam_member" "planner" {
  count              = var.pull_request_planner ? 1 : 0
  service_account_id = google_service_account.planner[0].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principal://iam.googleapis.com/${local.pool}/subject/${local.planner_subject}"
}

# Read-only: enough for `tofu plan` to refresh the state, nothing that changes a resource.
resource "google_project_iam_member" "planner" {
  for_each = var.pull_request_planner ? toset([
    "roles/viewer",
    "roles/iam.securityReviewer",
    "roles/container.viewer",
  ]) : toset([])
  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.planner[0].email}"
}

resource "google_storage_bucket_iam_member" "planner_state" {
  count  = var.pull_request_planner ? 1 : 0
  bucket = var.state_bucket
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.planner[0].email}"
}
