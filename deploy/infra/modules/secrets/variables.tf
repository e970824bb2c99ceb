variable "project_id" {
  type = string
}

variable "environment" {
  type = string
}

variable "prefix" {
  type        = string
  description = "Prefix of the secrets' names, e.g. license-edge-production."
}

variable "service_account_prefix" {
  type        = string
  description = "Prefix of the reader service account's id (at most 22 characters)."
}

variable "location" {
  type        = string
  description = "Where the secrets' values are stored (user-managed replication, one region)."
}

variable "secrets" {
  type        = map(string)
  description = "Secret name (after the prefix) => what it holds."
  default = {
    "database-url"     = "Spin variable database_url: the app role's connection URL (Secret license-edge-database)"
    "signing-key"      = "Spin variable signing_key until signing moves to Cloud KMS (Secret license-edge-signing-key)"
    "admin-token"      = "Spin variable admin_token (Secret license-edge-admin-token)"
    "verify-cache-key" = "Spin variable verify_cache_key (Secret license-edge-verify-cache-key)"
    "runtime-config"   = "Spin runtime config with the Redis URL and AUTH string (Secret license-edge-runtime-config)"
    "migrator"         = "libpq environment of the migration Job, the owner role (Secret license-edge-migrator)"
  }
}

variable "workload_pool" {
  type = string
}

variable "reader_kubernetes_service_account" {
  type        = string
  description = "NAMESPACE/NAME of the Kubernetes ServiceAccount that syncs the secrets into the cluster."
}
