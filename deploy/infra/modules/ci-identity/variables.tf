variable "project_id" {
  type = string
}

variable "name" {
  type        = string
  description = "Prefix of the service accounts' ids (6-30 characters in all)."
}

variable "environment" {
  type        = string
  description = "staging or production: also the GitHub environment whose jobs may deploy."
}

variable "github_repository" {
  type        = string
  description = "OWNER/REPO whose workflows may authenticate."
}

variable "pull_request_planner" {
  type        = bool
  description = "Create the read-only planner that pull requests run `tofu plan` with."
  default     = false
}

variable "state_bucket" {
  type        = string
  description = "The OpenTofu state bucket (the planner reads it)."
}
