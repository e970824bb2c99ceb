# The GKE cluster: private nodes, VPC-native, Dataplane V2 (GKE enforces the NetworkPolicies in
# deploy/base only with it), Workload Identity, shielded nodes, a release channel; a small
# system pool on Container-Optimized OS and the Ubuntu pool labelled spin=true on which
# runtime-class-manager installs containerd-shim-spin (its support matrix lists GKE with Ubuntu
# nodes only: COS keeps the paths it writes read-only).
#
# The control plane has no public IP endpoint. Operators, CI and OpenTofu's helm and kubernetes
# providers reach it through its DNS-based endpoint, which Google Cloud IAM guards (no
# allow-list of runner addresses to keep).

resource "google_service_account" "nodes" {
  project      = var.project_id
  account_id   = "${var.name}-nodes"
  display_name = "GKE nodes of ${var.name} (logs, metrics, image pulls only)"
}

# The least a node needs (Google's "least privilege service account for nodes").
resource "google_project_iam_member" "nodes" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
    "roles/autoscaling.metricsWriter",
  ])
  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.nodes.email}"
}

resource "google_container_cluster" "cluster" {
  #checkov:skip=CKV_GCP_12:Dataplane V2 (datapath_provider ADVANCED_DATAPATH) enforces NetworkPolicy itself; the legacy network_policy add-on must stay off with it
  #checkov:skip=CKV_GCP_66:Binary Authorization needs attestations this pipeline does not make yet; the app is deployed by digest from our own Artifact Registry
  #checkov:skip=CKV_GCP_24:PodSecurityPolicy was removed from Kubernetes in 1.25; the pods' security contexts are set in deploy/base
  #checkov:skip=CKV_GCP_13:Client certificates are off (master_auth below); checkov reads a missing block as basic auth
  #checkov:skip=CKV_GCP_69:The default node pool is removed at creation; every pool that stays sets workload_metadata_config GKE_METADATA
  #checkov:skip=CKV_GCP_68:The default node pool is removed at creation; every pool that stays enables secure boot
  #checkov:skip=CKV_GCP_22:The default node pool is removed at creation; the pools that stay pick their images (COS and Ubuntu, which the Spin shim needs)
  #checkov:skip=CKV_GCP_65:Google Groups for RBAC needs a Workspace domain; access is by IAM roles
  project  = var.project_id
  name     = var.name
  location = var.location

  network         = var.network_id
  subnetwork      = var.subnet_id
  networking_mode = "VPC_NATIVE"
  ip_allocation_policy {
    cluster_secondary_range_name  = var.pods_range_name
    services_secondary_range_name = var.services_range_name
  }

  datapath_provider = "ADVANCED_DATAPATH" # Dataplane V2: NetworkPolicy enforced

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = true
    master_ipv4_cidr_block  = var.master_cidr
    master_global_access_config {
      enabled = false
    }
  }
  control_plane_endpoints_config {
    dns_endpoint_config {
      allow_external_traffic = true # IAM-authenticated; the IP endpoint stays private
    }
  }
  master_authorized_networks_config {
    gcp_public_cidrs_access_enabled = false
  }

  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  release_channel {
    channel = var.release_channel
  }

  enable_shielded_nodes       = true
  enable_intranode_visibility = true
  enable_legacy_abac          = false

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  # Kubernetes Secrets encrypted at the application layer with a Cloud KMS key.
  database_encryption {
    state    = "ENCRYPTED"
    key_name = var.secrets_encryption_key
  }

  logging_config {
    enable_components = ["SYSTEM_COMPONENTS", "WORKLOADS"]
  }
  monitoring_config {
    enable_components = ["SYSTEM_COMPONENTS"]
    managed_prometheus {
      enabled = true
    }
  }

  resource_labels = {
    app         = "license-edge"
    environment = var.environment
  }

  # Node pools are managed below; the default one is removed at creation.
  remove_default_node_pool = true
  initial_node_count       = 1
  node_config {
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }

  deletion_protection = var.deletion_protection

  lifecycle {
    ignore_changes = [node_config, initial_node_count]
  }
}

# System workloads (cert-manager, runtime-class-manager, spin-operator, kube-dns ...).
resource "google_container_node_pool" "system" {
  #checkov:skip=CKV_GCP_22:Container-Optimized OS with containerd (COS_CONTAINERD) is what this pool runs
  project        = var.project_id
  name           = "system"
  cluster        = google_container_cluster.cluster.id
  location       = var.location
  node_locations = var.node_locations

  autoscaling {
    min_node_count = var.system_min_nodes
    max_node_count = var.system_max_nodes
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type    = var.system_machine_type
    image_type      = "COS_CONTAINERD"
    disk_size_gb    = 50
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    labels          = { pool = "system" }
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }
}

# The Spin apps: Ubuntu nodes labelled spin=true, where runtime-class-manager installs the shim
# (deploy/cluster/shim-spin.yaml selects them). The label comes from the pool, so recreated
# nodes keep it.
resource "google_container_node_pool" "spin" {
  #checkov:skip=CKV_GCP_22:runtime-class-manager supports GKE on Ubuntu nodes only (it writes the shim and containerd's config onto the node, which COS keeps read-only)
  project        = var.project_id
  name           = "spin"
  cluster        = google_container_cluster.cluster.id
  location       = var.location
  node_locations = var.node_locations

  autoscaling {
    min_node_count = var.spin_min_nodes
    max_node_count = var.spin_max_nodes
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type    = var.spin_machine_type
    image_type      = "UBUNTU_CONTAINERD"
    disk_size_gb    = 50
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    labels          = { spin = "true" }
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }
}
