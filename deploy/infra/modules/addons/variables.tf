variable "app_namespace" {
  type        = string
  description = "The app's namespace: license-edge (production) or license-edge-staging."
}
