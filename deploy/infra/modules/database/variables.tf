variable "project_id" {
  type = string
}

variable "name" {
  type        = string
  description = "The instance's name."
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
  type        = string
  description = "The private services access range the private IP comes from."
}

variable "private_services_connection" {
  type        = string
  description = "The peering the private IP needs (an ordering dependency)."
}

variable "tier" {
  type        = string
  description = "Machine type (Enterprise edition custom tiers: db-custom-CPUS-MEMORY_MB)."
  default     = "db-custom-2-7680"
}

variable "availability_type" {
  type        = string
  description = "REGIONAL (a standby in another zone, automatic failover) or ZONAL."
  default     = "REGIONAL"
}

variable "disk_size_gb" {
  type    = number
  default = 20
}

variable "retained_backups" {
  type        = number
  description = "Daily automated backups kept."
  default     = 14
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to delete the instance, in OpenTofu and in the Cloud SQL API."
  default     = true
}
