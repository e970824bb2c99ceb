variable "project_id" {
  type        = string
  description = "The Google Cloud project of this environment."
}

variable "region" {
  type        = string
  description = "Where everything runs."
  default     = "europe-west1"
}

variable "github_repository" {
  type        = string
  description = "OWNER/REPO whose workflows deploy (Workload Identity Federation)."
}

variable "state_bucket" {
  type        = string
  description = "The state bucket deploy/infra/bootstrap made."
}

variable "registry" {
  type = object({
    project  = string
    location = string
    name     = string
  })
  description = "The Artifact Registry repository staging owns (its registry_path output): production runs the digest staging tested, from there."
}

# The resources' names. The defaults suit a new project; an operator adopting instances made by
# hand (imports.tf.example) sets them to the existing names, since a new name means a new
# resource.
variable "names" {
  type = object({
    network  = optional(string, "le-production")
    cluster  = optional(string, "le-production")
    database = optional(string, "le-production")
    redis    = optional(string, "le-production")
  })
  description = "Names of the network, cluster, Cloud SQL instance and Memorystore instance."
  default     = {}
}
