variable "project_id" {
  type = string
}

variable "name" {
  type = string
}

variable "environment" {
  type = string
}

variable "region" {
  type = string
}

variable "network_id" {
  type = string
}

variable "private_services_range_name" {
  type = string
}

variable "private_services_connection" {
  type        = string
  description = "The peering the instance needs (an ordering dependency)."
}

variable "tier" {
  type        = string
  description = "STANDARD_HA (a replica with automatic failover) or BASIC (none)."
  default     = "STANDARD_HA"
}

variable "replica_count" {
  type        = number
  description = "Replicas of a STANDARD_HA instance."
  default     = 1
}

variable "memory_size_gb" {
  type    = number
  default = 1
}
