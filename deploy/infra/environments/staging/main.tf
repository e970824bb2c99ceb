# license-edge, staging: one zone's worth of everything, no standby, no replica, and no deletion
# protection, so it is cheap and can be rebuilt. It owns the Artifact Registry repository the
# pipeline pushes to; production pulls the same digest from it.

locals {
  environment = "staging"
  name        = "le-staging"
  namespace   = "license-edge-staging"
}

module "network" {
  source     = "../../modules/network"
  project_id = var.project_id
  region     = var.region
  name       = var.names.network
}

module "kms" {
  source                            = "../../modules/kms"
  project_id                        = var.project_id
  name                              = local.name
  location                          = var.region
  workload_pool                     = "${var.project_id}.svc.id.goog"
  signer_kubernetes_service_account = "${local.namespace}/license-edge"
}

module "cluster" {
  source                 = "../../modules/cluster"
  project_id             = var.project_id
  name                   = var.names.cluster
  environment            = local.environment
  location               = var.region
  node_locations         = ["${var.region}-b"]
  network_id             = module.network.network_id
  subnet_id              = module.network.subnet_id
  pods_range_name        = module.network.pods_range_name
  services_range_name    = module.network.services_range_name
  secrets_encryption_key = module.kms.gke_secrets_key
  system_max_nodes       = 1
  spin_max_nodes         = 2
  deletion_protection    = false
}

module "database" {
  source                      = "../../modules/database"
  project_id                  = var.project_id
  name                        = var.names.database
  environment                 = local.environment
  region                      = var.region
  network_id                  = module.network.network_id
  private_services_range_name = module.network.private_services_range_name
  private_services_connection = module.network.private_services_connection
  tier                        = "db-custom-1-3840"
  availability_type           = "ZONAL"
  retained_backups            = 7
  deletion_protection         = false
}

module "redis" {
  source                      = "../../modules/redis"
  project_id                  = var.project_id
  name                        = var.names.redis
  environment                 = local.environment
  region                      = var.region
  network_id                  = module.network.network_id
  private_services_range_name = module.network.private_services_range_name
  private_services_connection = module.network.private_services_connection
  tier                        = "BASIC"
  memory_size_gb              = 1
}

module "secrets" {
  source                            = "../../modules/secrets"
  project_id                        = var.project_id
  environment                       = local.environment
  prefix                            = "license-edge-${local.environment}"
  service_account_prefix            = local.name
  location                          = var.region
  workload_pool                     = "${var.project_id}.svc.id.goog"
  reader_kubernetes_service_account = "${local.namespace}/license-edge-secrets"
}

module "ci" {
  source               = "../../modules/ci-identity"
  project_id           = var.project_id
  name                 = local.name
  environment          = local.environment
  github_repository    = var.github_repository
  pull_request_planner = true
  state_bucket         = var.state_bucket
}

module "registry" {
  source     = "../../modules/registry"
  project_id = var.project_id
  location   = var.region
  writers    = ["serviceAccount:${module.ci.deployer_service_account}"]
  # Production grants its own nodes and deployer read access here (its root, staging_registry).
  readers = ["serviceAccount:${module.cluster.nodes_service_account}"]
}

module "addons" {
  source                   = "../../modules/addons"
  app_namespace            = local.namespace
  planner_service_accounts = [module.ci.planner_service_account]
}
