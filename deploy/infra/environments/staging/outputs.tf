# What deploy/infra/render-overlay.py writes into deploy/overlays/staging (each address once),
# and what the pipeline and operators need. `tofu output -json > staging.json`.

output "environment" {
  value = local.environment
}

output "namespace" {
  value = local.namespace
}

output "project_id" {
  value = var.project_id
}

output "region" {
  value = var.region
}

output "cluster_name" {
  value = module.cluster.name
}

output "cluster_location" {
  value = module.cluster.location
}

output "db_dns_name" {
  description = "The name the app and the migration Job connect to Cloud SQL by (it is in the server certificate)."
  value       = module.database.dns_name
}

output "db_private_ip" {
  value = module.database.private_ip
}

output "db_instance" {
  value = module.database.instance_name
}

output "redis_host" {
  value = module.redis.host
}

output "redis_instance" {
  value = module.redis.name
}

output "redis_port" {
  value = module.redis.port
}

output "redis_ca_certs" {
  description = "Memorystore's server CA certificates (public), for Secret license-edge-ca."
  value       = module.redis.server_ca_certs
}

output "registry_path" {
  value = module.registry.path
}

output "image" {
  description = "The app's image name; the pipeline pins a digest of it."
  value       = "${module.registry.path}/license-edge"
}

output "signer_service_account" {
  value = module.kms.signer_service_account
}

output "signing_key" {
  value = module.kms.signing_key
}

output "secrets_reader_service_account" {
  value = module.secrets.reader_service_account
}

output "secret_ids" {
  value = module.secrets.secret_ids
}

output "workload_identity_provider" {
  value = module.ci.workload_identity_provider
}

output "deployer_service_account" {
  value = module.ci.deployer_service_account
}

output "planner_service_account" {
  value = module.ci.planner_service_account
}

output "nodes_service_account" {
  value = module.cluster.nodes_service_account
}
