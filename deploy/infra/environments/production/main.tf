# license-edge, production: a regional cluster (nodes in three zones), Cloud SQL with a standby
# in another zone (REGIONAL), Memorystore STANDARD_HA (a replica with automatic failover), and
# deletion protection on the cluster and the database. The app's artifact comes from staging's
# repository, by the digest staging ran.

locals {
  environment = "production"
  name        = "le-production"
  namespace   = "license-edge"
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
  network_id             = module.network.network_id
  subnet_id              = module.network.subnet_id
  pods_range_name        = module.network.pods_range_name
  services_range_name    = module.network.services_range_name
  secrets_encryption_key = module.kms.gke_secrets_key
  master_cidr            = "172.16.0.16/28"
  system_max_nodes       = 1
  spin_max_nodes         = 2
  deletion_protection    = true
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
  tier                        = "db-custom-2-7680"
  availability_type           = "REGIONAL"
  retained_backups            = 14
  deletion_protection         = true
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
  tier                        = "STANDARD_HA"
  replica_count               = 1
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
  source            = "../../modules/ci-identity"
  project_id        = var.project_id
  name              = local.name
  environment       = local.environment
  github_repository = var.github_repository
  state_bucket      = var.state_bucket
}

# Pull from staging's repository: the nodes (image pulls) and the deployer (digest checks).
resource "google_artifact_registry_repository_iam_member" "staging_registry" {
  for_each = {
    nodes    = "serviceAccount:${module.cluster.nodes_service_account}"
    deployer = "serviceAccount:${module.ci.deployer_service_account}"
  }
  project    = var.registry.project
  location   = var.registry.location
  repository = var.registry.name
  role       = "roles/artifactregistry.reader"
  member     = each.value
}

module "addons" {
  source        = "../../modules/addons"
  app_namespace = local.namespace
}
