variable "project_id" {
  type = string
}

variable "location" {
  type = string
}

variable "name" {
  type    = string
  default = "license-edge"
}

variable "writers" {
  type        = list(string)
  description = "IAM members that push (the pipeline's deployer)."
  default     = []
}

variable "readers" {
  type        = list(string)
  description = "IAM members that pull (the nodes of every environment that runs the app)."
  default     = []
}
