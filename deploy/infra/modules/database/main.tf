# Cloud SQL for PostgreSQL: private IP only, TLS required on every connection, automated
# backups with point-in-time recovery, and deletion protection where the environment asks.
#
# TLS. ssl_mode ENCRYPTED_ONLY: the server refuses any connection that is not TLS, without
# asking clients for a certificate. server_ca_mode GOOGLE_MANAGED_CAS_CA: the server certificate
# is signed by Google's regional CA hierarchy and names the instance's DNS name (dns_name),
# which the private zone below resolves to the private IP. So a client that verifies the
# server's chain and host name (Spin 3.6's tokio-postgres with native-tls does, whenever it uses
# TLS) can connect by that name with that CA in its trust bundle. Why not
# TRUSTED_CLIENT_CERTIFICATE_REQUIRED: Spin's PostgreSQL client cannot present a client
# certificate, so that mode would admit only the Cloud SQL Auth Proxy and connectors, and put a
# plaintext hop between the app and the proxy. deploy/README.md ("TLS to Cloud SQL") has it all.
#
# Database roles are not made here (deploy/README.md, "Database roles and grants"): users that
# the Cloud SQL API creates become members of cloudsqlsuperuser, and a resource that sets a
# password keeps it in the state. The `postgres` password is set once with
# `gcloud sql users set-password` for the same reason.

resource "google_sql_database_instance" "postgres" {
  #checkov:skip=CKV_GCP_79:PostgreSQL 15 is the version the test suite runs against (deploy/README.md, Versions); move with it
  #checkov:skip=CKV_GCP_6:ssl_mode ENCRYPTED_ONLY requires TLS on every connection; checkov looks for the legacy require_ssl, which would also demand client certificates Spin cannot send
  #checkov:skip=CKV2_GCP_13:log_duration would log a line for every statement, thousands a second on the seat path; slow statements show in Query Insights instead
  #checkov:skip=CKV_GCP_111:log_statement=ddl is set: schema changes are logged; logging every statement would log the license keys' hashes and session ids the functions take
  project             = var.project_id
  name                = var.name
  region              = var.region
  database_version    = "POSTGRES_15"
  deletion_protection = var.deletion_protection # OpenTofu refuses to destroy it

  settings {
    edition                     = "ENTERPRISE"
    tier                        = var.tier
    availability_type           = var.availability_type
    disk_type                   = "PD_SSD"
    disk_size                   = var.disk_size_gb
    disk_autoresize             = true
    deletion_protection_enabled = var.deletion_protection # the Cloud SQL API refuses too

    ip_configuration {
      ipv4_enabled       = false # private IP only
      private_network    = var.network_id
      allocated_ip_range = var.private_services_range_name
      ssl_mode           = "ENCRYPTED_ONLY"
      server_ca_mode     = "GOOGLE_MANAGED_CAS_CA"
    }

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = "02:00"
      transaction_log_retention_days = 7
      backup_retention_settings {
        retained_backups = var.retained_backups
        retention_unit   = "COUNT"
      }
    }

    maintenance_window {
      day          = 7 # Sunday
      hour         = 4
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled  = true
      record_application_tags = false
      record_client_address   = false
    }

    # Logging flags (connections, locks, temp files, checkpoints) for the operations issue's
    # monitoring; log_min_duration_statement -1 keeps statements and their parameters out of logs.
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }

    user_labels = {
      app         = "license-edge"
      environment = var.environment
    }
  }

  depends_on = [var.private_services_connection]
}

# The private name the server certificate carries, resolving to the private IP inside the VPC.
resource "google_dns_managed_zone" "instance" {
  project     = var.project_id
  name        = "${var.name}-sql"
  dns_name    = "${trimsuffix(google_sql_database_instance.postgres.dns_name, ".")}."
  description = "Cloud SQL ${var.name}: the name its server certificate carries"
  visibility  = "private"

  private_visibility_config {
    networks {
      network_url = var.network_id
    }
  }

  lifecycle {
    # Not seen on a real instance (deploy/README.md, "TLS to Cloud SQL"): the shared CA gives the
    # instance a DNS name; if this provider reports none, read `dnsNames` from
    # `gcloud sql instances describe` and stop here rather than point the app at nothing.
    precondition {
      condition     = google_sql_database_instance.postgres.dns_name != ""
      error_message = "Cloud SQL reported no DNS name for ${var.name}; check server_ca_mode and the instance's dnsNames."
    }
  }
}

resource "google_dns_record_set" "instance" {
  project      = var.project_id
  managed_zone = google_dns_managed_zone.instance.name
  name         = google_dns_managed_zone.instance.dns_name
  type         = "A"
  ttl          = 300
  rrdatas      = [google_sql_database_instance.postgres.private_ip_address]
}
