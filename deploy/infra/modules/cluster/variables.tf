variable "project_id" {
  type        = string
  description = "The Google Cloud project."
}

variable "name" {
  type        = string
  description = "The cluster's name (also the prefix of its node service account)."
}

variable "environment" {
  type        = string
  description = "staging or production (a resource label)."
}

variable "location" {
  type        = string
  description = "A region (regional cluster, control plane in three zones) or a zone."
}

variable "node_locations" {
  type        = list(string)
  description = "The zones the node pools span; null: the location's default."
  default     = null
}

variable "network_id" {
  type = string
}

variable "subnet_id" {
  type = string
}

variable "pods_range_name" {
  type = string
}

variable "services_range_name" {
  type = string
}

variable "master_cidr" {
  type        = string
  description = "The /28 the control plane's private endpoint takes."
  default     = "172.16.0.0/28"
}

variable "release_channel" {
  type        = string
  description = "GKE release channel; deploy/README.md's table says which Kubernetes versions the manifests were validated against."
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.release_channel)
    error_message = "Use a release channel (RAPID, REGULAR or STABLE): GKE then upgrades the control plane and nodes."
  }
}

variable "secrets_encryption_key" {
  type        = string
  description = "The Cloud KMS key that encrypts Kubernetes Secrets in etcd."
}

variable "system_machine_type" {
  type    = string
  default = "e2-standard-2"
}

variable "system_min_nodes" {
  type        = number
  description = "Per zone."
  default     = 1
}

variable "system_max_nodes" {
  type        = number
  description = "Per zone."
  default     = 2
}

variable "spin_machine_type" {
  type    = string
  default = "e2-standard-2"
}

variable "spin_min_nodes" {
  type        = number
  description = "Per zone."
  default     = 1
}

variable "spin_max_nodes" {
  type        = number
  description = "Per zone."
  default     = 3
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse `tofu destroy` of the cluster."
  default     = true
}
