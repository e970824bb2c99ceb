variable "app_namespace" {
  type        = string
  description = "The app's namespace: license-edge (production) or license-edge-staging."
}

variable "planner_service_accounts" {
  type        = list(string)
  description = "Emails of the read-only pull-request planners, which may read the Helm releases' Secrets (not the app's)."
  default     = []
}
