variable "project_id" {
  type        = string
  description = "The Google Cloud project."
}

variable "region" {
  type        = string
  description = "The bucket's location."
  default     = "europe-west1"
}

variable "state_bucket" {
  type        = string
  description = "A globally unique bucket name, e.g. PROJECT-license-edge-tofu-state."
}
