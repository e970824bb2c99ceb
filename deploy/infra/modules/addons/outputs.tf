output "versions" {
  description = "The add-on versions this module installs."
  value = {
    cert_manager          = local.cert_manager_version
    runtime_class_manager = local.runtime_class_manager_chart_version
    spin_operator         = local.spin_operator_version
  }
}
