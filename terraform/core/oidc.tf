# The account's GitHub OIDC identity provider. The audience is the one STS expects; no static keys
# exist anywhere in this design.
resource "aws_iam_openid_connect_provider" "github" {
  count          = var.create_oidc_provider ? 1 : 0
  url            = "https://${local.oidc_host}"
  client_id_list = ["sts.amazonaws.com"]
}
