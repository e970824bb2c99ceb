variable "project_id" {
  type        = string
  description = "The Google Cloud project."
}

variable "region" {
  type        = string
  description = "The region of the subnet and the NAT."
}

variable "name" {
  type        = string
  description = "The VPC's name; the subnet, range and NAT are named after it."
}

variable "nodes_cidr" {
  type        = string
  description = "The subnet's primary range (nodes)."
  default     = "10.10.0.0/20"
}

variable "pods_cidr" {
  type        = string
  description = "The secondary range for pods (VPC-native cluster)."
  default     = "10.20.0.0/16"
}

variable "services_cidr" {
  type        = string
  description = "The secondary range for Services."
  default     = "10.30.0.0/20"
}
