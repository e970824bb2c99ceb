variable "project_id" {
  type = string
}

variable "name" {
  type        = string
  description = "The key ring's name (and the signer service account's prefix)."
}

variable "location" {
  type        = string
  description = "The key ring's location: the cluster's region (GKE Secrets encryption needs it there)."
}

variable "signing_protection_level" {
  type        = string
  description = "SOFTWARE or HSM. SOFTWARE by default because we have not confirmed that EC_SIGN_ED25519 is offered on HSM in every region; prefer HSM where it is."
  default     = "SOFTWARE"
}

variable "workload_pool" {
  type        = string
  description = "The cluster's Workload Identity pool, PROJECT.svc.id.goog."
}

variable "signer_kubernetes_service_account" {
  type        = string
  description = "NAMESPACE/NAME of the Kubernetes ServiceAccount that signs (the app's)."
}
