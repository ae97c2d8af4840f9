variable "environment" {
  description = "Environment being deployed (dev, staging, prod)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,31}$", var.environment))
    error_message = "The environment must be a lowercase name (letters, digits, '-')."
  }
}

variable "image_repository" {
  description = "Registry host and repository of the image."
  type        = string
}

variable "image_digest" {
  description = "Digest of the image to run (sha256:<64 hex>)."
  type        = string

  validation {
    condition     = can(regex("^sha256:[0-9a-f]{64}$", var.image_digest))
    error_message = "The image digest must be sha256: followed by 64 lowercase hex digits."
  }
}

variable "commit_sha" {
  description = "The commit being deployed."
  type        = string
}

variable "name" {
  description = "Application name."
  type        = string
  default     = "app"
}

variable "vpc_cidr" {
  description = "CIDR of the environment's VPC."
  type        = string
  default     = "10.40.0.0/16"
}

variable "desired_count" {
  description = "Running tasks."
  type        = number
  default     = 2
}

variable "container_port" {
  description = "Port the application listens on."
  type        = number
  default     = 8080
}

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.small"
}

variable "db_multi_az" {
  description = "Run the database in two availability zones (on for prod)."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of the application and flow logs."
  type        = number
  default     = 365
}

variable "availability_zones" {
  description = "Availability zones of the private subnets (at least two), pinned so the network never changes on its own when AWS adds a zone."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2
    error_message = "Give at least two availability zones."
  }
}
