# Per-environment settings of the example stack; the templates pass env/<environment>.tfvars
# when it exists.
availability_zones = ["eu-west-1a", "eu-west-1b"]
vpc_cidr           = "10.40.0.0/16"
db_multi_az        = false
desired_count      = 1
