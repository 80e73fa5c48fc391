// Key Vault for what cannot be an identity: the PostgreSQL URLs and passwords, and the cursor
// signing key. RBAC authorization only (no access policies); the app may read exactly the two
// secrets it uses (rbac.bicep), the deployer may read all of them.

param location string
param tags object
param vaultName string
param enablePurgeProtection bool

@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string

@allowed([
  'Allow'
  'Deny'
])
@description('Allow: reachable from anywhere, RBAC decides (the app resolves Key Vault references from outside any virtual network). Deny: only the private endpoint and allowedIpAddresses.')
param firewallDefaultAction string

@description('IPv4 addresses allowed through the vault firewall.')
param allowedIpAddresses array

@secure()
@description('POSTGRES_URL of the app login.')
param postgresUrl string

@secure()
@description('libpq URL of the schema owner, for migrations.')
param postgresAdminUrl string

@secure()
param postgresAdminPassword string

@secure()
param postgresAppPassword string

@secure()
param cursorSigningKey string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: vaultName
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    // false is not accepted once set; null leaves it off.
    enablePurgeProtection: enablePurgeProtection ? true : null
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: firewallDefaultAction
      ipRules: [for ip in allowedIpAddresses: {
        value: ip
      }]
    }
  }
}

resource postgresUrlSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'postgres-url'
  properties: {
    value: postgresUrl
    contentType: 'libpq URL of the app login (POSTGRES_URL)'
  }
}

resource postgresAdminUrlSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'postgres-admin-url'
  properties: {
    value: postgresAdminUrl
    contentType: 'libpq URL of the schema owner (migrations only)'
  }
}

resource postgresAdminPasswordSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'postgres-admin-password'
  properties: {
    value: postgresAdminPassword
    contentType: 'password of the PostgreSQL administrator'
  }
}

resource postgresAppPasswordSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'postgres-app-password'
  properties: {
    value: postgresAppPassword
    contentType: 'password of the app login'
  }
}

resource cursorSigningKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'cursor-signing-key'
  properties: {
    value: cursorSigningKey
    contentType: 'CURSOR_SIGNING_KEY'
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
// Versionless: the app follows rotations (Key Vault references refresh within 24 hours or on restart).
output postgresUrlSecretUri string = postgresUrlSecret.properties.secretUri
output cursorSigningKeySecretUri string = cursorSigningKeySecret.properties.secretUri
