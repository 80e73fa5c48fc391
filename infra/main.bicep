// Chorus: everything the Function App needs, in one resource group.
//
//   azd up                                   (azure.yaml at the repository root)
//   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.parameters.json ...
//
// Every connection is identity-based wherever Azure allows it: one user-assigned managed
// identity for the app, Entra-only auth on Cosmos DB, Event Hubs, Storage and Application
// Insights (their keys are disabled). PostgreSQL is the one exception: the app reads a libpq
// URL (POSTGRES_URL) from a Key Vault reference. docs/deploy.md explains every parameter.
targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------

@minLength(1)
@maxLength(64)
@description('Name of the environment (azd: AZURE_ENV_NAME). Seeds the unique suffix of every resource name and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Region of every resource. It must offer the Flex Consumption plan (az functionapp list-flexconsumption-locations).')
param location string = resourceGroup().location

@description('Object id of the person or pipeline that deploys (azd: AZURE_PRINCIPAL_ID). It may read the generated secrets in Key Vault, which the migration hook and azd need. Empty: no access is granted.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
@description('Kind of principalId.')
param principalType string = 'User'

@description('Extra tags for every resource.')
param extraTags object = {}

// Network ------------------------------------------------------------------------------

@description('true (default): a virtual network, the Function App integrated into it and private endpoints for Cosmos DB, PostgreSQL, Event Hubs, Key Vault and the host storage account, whose public endpoints are then disabled. false: public endpoints that accept Entra tokens only (keys disabled), PostgreSQL behind its firewall, which then admits only allowedIpAddresses unless postgresAllowAzureServices is set.')
param networkIsolation bool = true

@description('Comma-separated IPv4 addresses (operators, CI runners) allowed through the PostgreSQL and Key Vault firewalls, e.g. for the migration hook. With networkIsolation the public endpoints of both stay closed unless this list is non-empty.')
param allowedIpAddresses string = ''

@description('Address space of the virtual network (networkIsolation only).')
param vnetAddressPrefix string = '10.40.0.0/16'

@description('Subnet delegated to Microsoft.App/environments for the Function App (networkIsolation only).')
param appSubnetPrefix string = '10.40.1.0/24'

@description('Subnet for private endpoints (networkIsolation only).')
param privateEndpointSubnetPrefix string = '10.40.2.0/24'

// Function App ---------------------------------------------------------------------------

@allowed([
  512
  2048
  4096
])
@description('Memory of each Flex Consumption instance.')
param functionAppInstanceMemoryMB int = 2048

@minValue(40)
@maxValue(1000)
@description('Upper bound of Flex Consumption instances. Keep instances x POSTGRES_POOL_MAX below the PostgreSQL max_connections.')
param functionAppMaximumInstanceCount int = 40

@description('Spread the Function App over availability zones (only in regions with zones).')
param functionAppZoneRedundant bool = false

@description('Comma-separated origins allowed to call the HTTP API from a browser (CORS), e.g. https://app.example.com. Empty: none.')
param corsAllowedOrigins string = ''

@minLength(1)
@description('AUTH_ISSUER: the iss every bearer token must carry.')
param authIssuer string

@minLength(1)
@description('AUTH_AUDIENCE: the aud every bearer token must carry.')
param authAudience string

@description('AUTH_JWKS_URL: where the token signing keys are published. Set this or authPublicKeysPem.')
param authJwksUrl string = ''

@description('AUTH_PUBLIC_KEYS_PEM: PEM public keys, when there is no JWKS endpoint.')
param authPublicKeysPem string = ''

@description('AUTH_ROLE_CLAIM: the token claim holding the roles.')
param authRoleClaim string = 'roles'

@secure()
@description('CURSOR_SIGNING_KEY (at least 32 characters after padding). azd reuses the value stored in Key Vault; with az, pass the stored value to keep issued cursors valid.')
param cursorSigningKey string = newGuid()

@secure()
@description('Appended to cursorSigningKey when that is shorter than 32 characters (azd generates 15-character values). Leave the default.')
param cursorSigningKeyPadding string = newGuid()

@minValue(0)
@description('POSTGRES_POOL_MIN: connections each worker keeps open.')
param postgresPoolMin int = 1

@minValue(1)
@description('POSTGRES_POOL_MAX: connections each worker may open.')
param postgresPoolMax int = 5

@minValue(1024)
@description('MAX_REQUEST_BODY_BYTES.')
param maxRequestBodyBytes int = 65536

@allowed([
  'DEBUG'
  'INFO'
  'WARNING'
  'ERROR'
])
@description('LOG_LEVEL.')
param logLevel string = 'INFO'

@description('More app settings, merged last (they override the ones this template sets).')
param additionalAppSettings object = {}

// Cosmos DB --------------------------------------------------------------------------------

@allowed([
  'serverless'
  'autoscale'
])
@description('serverless: pay per request, nothing at idle. autoscale: shared database throughput that scales between 10% and 100% of cosmosAutoscaleMaxThroughput.')
param cosmosCapacityMode string = 'serverless'

@minValue(1000)
@description('Autoscale ceiling in RU/s shared by all containers (autoscale only).')
param cosmosAutoscaleMaxThroughput int = 1000

@minLength(1)
@description('COSMOS_DATABASE.')
param cosmosDatabaseName string = 'chorus'

@description('Continuous (point-in-time) backup with 7 days of history; false keeps the periodic default.')
param cosmosContinuousBackup bool = true

// PostgreSQL -------------------------------------------------------------------------------

@allowed([
  '16'
  '17'
])
@description('PostgreSQL major version.')
param postgresVersion string = '17'

@description('Compute size, e.g. Standard_B1ms (Burstable, 50 connections), Standard_B2s (Burstable, 429 connections), Standard_D2ds_v5 (GeneralPurpose).')
param postgresSkuName string = 'Standard_B2s'

@allowed([
  'Burstable'
  'GeneralPurpose'
  'MemoryOptimized'
])
@description('Tier of postgresSkuName.')
param postgresSkuTier string = 'Burstable'

@minValue(32)
@description('Storage in GiB (grows automatically).')
param postgresStorageSizeGB int = 32

@description('Zone-redundant high availability (not on Burstable).')
param postgresHighAvailability bool = false

@minValue(7)
@maxValue(35)
@description('Point-in-time restore window in days.')
param postgresBackupRetentionDays int = 7

@description('Geo-redundant backups (chosen at creation only).')
param postgresGeoRedundantBackup bool = false

@minLength(1)
@description('Administrator login: owns the schema, runs the migrations. The app never uses it.')
param postgresAdminLogin string = 'chorus_owner'

@secure()
@minLength(8)
@description('Administrator password. azd generates it once and reads it back from Key Vault (main.parameters.json).')
param postgresAdminPassword string

@minLength(1)
@description('The login the app connects as: a member of chorus_app, so row-level security applies. The migration hook creates it.')
param postgresAppLogin string = 'chorus_api'

@secure()
@minLength(8)
@description('Password of postgresAppLogin. azd generates it once and reads it back from Key Vault.')
param postgresAppPassword string

@minLength(1)
@description('The application database.')
param postgresDatabaseName string = 'chorus'

@allowed([
  'require'
  'verify-full'
])
@description('sslmode of the libpq URLs. verify-full (default) checks the server certificate and host name against postgresSslRootCert.')
param postgresSslMode string = 'verify-full'

@description('POSTGRES_SSL_ROOT_CERT: the CA bundle verify-full checks the server against. The default is the Functions image\'s system bundle, which holds the roots Azure Database for PostgreSQL chains to (DigiCert Global Root G2, Microsoft RSA Root CA 2017).')
param postgresSslRootCert string = '/etc/ssl/certs/ca-certificates.crt'

@allowed([
  'entra'
  'password'
])
@description('How the app logs in to PostgreSQL. entra (default): as its managed identity, with a Microsoft Entra token per connection and no password (POSTGRES_ENTRA_AUTH); the migration hook creates its role as the PostgreSQL Entra administrator. password: as postgresAppLogin with postgresAppPassword.')
param postgresAppAuthentication string = 'entra'

@description('Adds the firewall rule that admits every Azure resource (0.0.0.0), of any tenant, when networkIsolation is false: a Flex Consumption app without virtual network integration has no fixed outbound address. Off by default; only for a public test profile.')
param postgresAllowAzureServices bool = false

@description('Object id of a Microsoft Entra user or group made PostgreSQL Entra administrator (for people and the migration hook; the app itself is never an administrator). Empty: with postgresAppAuthentication entra, the deployer (principalId) is made administrator; with password, Entra authentication stays off unless set.')
param postgresEntraAdminObjectId string = ''

@description('PostgreSQL role name of the Entra administrator (UPN or group name for people; any name when the deployer is made administrator, since the server maps roles to object ids). Empty: chorus_deployer.')
param postgresEntraAdminName string = ''

@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
@description('Kind of postgresEntraAdminObjectId.')
param postgresEntraAdminType string = 'Group'

// Event Hubs -------------------------------------------------------------------------------

@allowed([
  'Basic'
  'Standard'
  'Premium'
])
@description('Event Hubs tier. Standard or Premium for consumer groups beyond $Default and for private endpoints.')
param eventHubsSku string = 'Standard'

@minValue(1)
@description('Throughput (Basic/Standard) or processing (Premium) units.')
param eventHubsCapacity int = 1

@minLength(1)
@description('EVENTHUB_NAME: the hub that carries every integration event.')
param eventHubName string = 'chorus-events'

@minValue(1)
@maxValue(32)
@description('Partitions of the hub (fixed after creation on Basic and Standard). Events are keyed by aggregate id.')
param eventHubPartitionCount int = 4

@minValue(1)
@maxValue(90)
@description('Days an event stays readable (Basic: 1, Standard: up to 7).')
param eventHubRetentionDays int = 1

// Media storage ----------------------------------------------------------------------------

@minLength(3)
@description('MEDIA_CONTAINER: the private blob container of uploaded media.')
param mediaContainerName string = 'media'

// The account exports that are too large to answer inline (shared_code/services/export.py EXPORT_CONTAINER).
var exportsContainerName = 'exports'

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
@description('Replication of the media account.')
param mediaStorageSku string = 'Standard_ZRS'

@description('Comma-separated browser origins allowed to PUT/GET media with SAS URLs (CORS on the media blob service). Empty: none.')
param mediaCorsAllowedOrigins string = ''

// Monitoring and Key Vault -----------------------------------------------------------------

@minValue(30)
@maxValue(730)
@description('Log Analytics retention in days.')
param logAnalyticsRetentionDays int = 30

@description('Log Analytics daily ingestion cap in GB; -1 for none.')
param logAnalyticsDailyQuotaGb int = -1

@description('E-mail address the alert rules notify (outbox lag, dead outbox events, open change-feed failures). Empty: no action group; the alerts still fire in the portal.')
param alertEmailAddress string = ''

@minValue(1)
@description('The outbox lag alert fires when the oldest pending outbox event stays older than this many seconds for 5 minutes. Keep it equal to HEALTH_OUTBOX_LAG_SECONDS (infra/app-settings.json), where /api/admin/health turns degraded.')
param outboxLagAlertSeconds int = 60

@description('Purge protection on Key Vault. Recommended; it keeps the vault name reserved for 7 days after deletion.')
param keyVaultPurgeProtection bool = true

// ---------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName, location))
var tags = union(extraTags, {
  'azd-env-name': environmentName
})

var names = {
  identity: '${abbrs.managedIdentityUserAssignedIdentities}api-${resourceToken}'
  plan: '${abbrs.webServerFarms}${resourceToken}'
  functionApp: '${abbrs.webSitesFunctions}api-${resourceToken}'
  hostStorage: '${abbrs.storageStorageAccounts}${resourceToken}'
  mediaStorage: '${abbrs.storageStorageAccounts}media${resourceToken}'
  deploymentContainer: 'app-package-${take(resourceToken, 7)}'
  logAnalytics: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
  appInsights: '${abbrs.insightsComponents}${resourceToken}'
  actionGroup: '${abbrs.insightsActionGroups}ops-${resourceToken}'
  alertRulePrefix: '${abbrs.insightsScheduledQueryRules}${resourceToken}-'
  cosmos: '${abbrs.cosmosDbAccounts}${resourceToken}'
  postgres: '${abbrs.dbForPostgreSqlFlexibleServers}${resourceToken}'
  eventHubs: '${abbrs.eventHubNamespaces}${resourceToken}'
  keyVault: '${abbrs.keyVaultVaults}${resourceToken}'
  vnet: '${abbrs.networkVirtualNetworks}${resourceToken}'
  nsg: '${abbrs.networkNetworkSecurityGroups}${resourceToken}'
  natGateway: '${abbrs.networkNatGateways}${resourceToken}'
  publicIp: '${abbrs.networkPublicIPAddresses}${resourceToken}'
  privateEndpointPrefix: '${abbrs.networkPrivateEndpoints}'
}

// Closed to the internet with networkIsolation; the operator IPs may still reach PostgreSQL and
// Key Vault through their firewalls (the migration hook and azd read secrets from there).
var dataPlanePublicAccess = networkIsolation ? 'Disabled' : 'Enabled'
var firewalledPublicAccess = networkIsolation && empty(allowedIps) ? 'Disabled' : 'Enabled'

// Lists arrive as comma-separated strings (easy to set with `azd env set`).
var allowedIps = empty(trim(allowedIpAddresses)) ? [] : split(replace(allowedIpAddresses, ' ', ''), ',')
var apiCorsOrigins = empty(trim(corsAllowedOrigins)) ? [] : split(replace(corsAllowedOrigins, ' ', ''), ',')
var mediaCorsOrigins = empty(trim(mediaCorsAllowedOrigins)) ? [] : split(replace(mediaCorsAllowedOrigins, ' ', ''), ',')

// ---------------------------------------------------------------------------------------
// Identity, monitoring, network
// ---------------------------------------------------------------------------------------

// The app's one identity: every data-plane role below is granted to it, and AZURE_CLIENT_ID
// makes DefaultAzureCredential in shared_code pick it.
resource appIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: names.identity
  location: location
  tags: tags
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: tags
    logAnalyticsName: names.logAnalytics
    applicationInsightsName: names.appInsights
    retentionInDays: logAnalyticsRetentionDays
    dailyQuotaGb: logAnalyticsDailyQuotaGb
  }
}

// Alert rules on the app's metrics, the optional e-mail action group, and the operations workbook.
module alerts 'app/alerts.bicep' = {
  name: 'alerts'
  params: {
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    alertEmailAddress: alertEmailAddress
    outboxLagSeconds: outboxLagAlertSeconds
    actionGroupName: names.actionGroup
    alertRuleNamePrefix: names.alertRulePrefix
    workbookDisplayName: 'Chorus operations (${environmentName})'
  }
}

module network 'app/network.bicep' = if (networkIsolation) {
  name: 'network'
  params: {
    location: location
    tags: tags
    vnetName: names.vnet
    nsgName: names.nsg
    natGatewayName: names.natGateway
    publicIpName: names.publicIp
    vnetAddressPrefix: vnetAddressPrefix
    appSubnetPrefix: appSubnetPrefix
    privateEndpointSubnetPrefix: privateEndpointSubnetPrefix
  }
}

// ---------------------------------------------------------------------------------------
// Data stores
// ---------------------------------------------------------------------------------------

// AzureWebJobsStorage (host state, timer and singleton leases) and the deployment package.
module hostStorage 'app/storage-account.bicep' = {
  name: 'host-storage'
  params: {
    name: names.hostStorage
    location: location
    tags: tags
    skuName: 'Standard_LRS'
    containerNames: [
      names.deploymentContainer
    ]
    publicNetworkAccess: dataPlanePublicAccess
    corsRules: []
  }
}

// Uploaded media: a private container, reached by clients with user-delegation SAS URLs the app
// signs. Its endpoint stays public in both network modes because clients talk to it directly.
module mediaStorage 'app/storage-account.bicep' = {
  name: 'media-storage'
  params: {
    name: names.mediaStorage
    location: location
    tags: tags
    skuName: mediaStorageSku
    containerNames: [
      mediaContainerName
      exportsContainerName
    ]
    publicNetworkAccess: 'Enabled'
    corsRules: empty(mediaCorsOrigins) ? [] : [
      {
        allowedOrigins: mediaCorsOrigins
        allowedMethods: [
          'GET'
          'HEAD'
          'PUT'
          'OPTIONS'
        ]
        allowedHeaders: [
          'content-type'
          'content-md5'
          'x-ms-*'
        ]
        exposedHeaders: [
          'etag'
          'content-length'
          'x-ms-*'
        ]
        maxAgeInSeconds: 3600
      }
    ]
  }
}

module cosmos 'app/cosmos.bicep' = {
  name: 'cosmos'
  params: {
    location: location
    tags: tags
    accountName: names.cosmos
    databaseName: cosmosDatabaseName
    capacityMode: cosmosCapacityMode
    autoscaleMaxThroughput: cosmosAutoscaleMaxThroughput
    continuousBackup: cosmosContinuousBackup
    publicNetworkAccess: dataPlanePublicAccess
  }
}

// With Entra for the app, someone must be Entra administrator to create the app's role: the person or
// group given, else the deployer.
var postgresEntraAdminGiven = {
  id: postgresEntraAdminObjectId
  name: postgresEntraAdminName
  type: postgresEntraAdminType
}
var postgresEntraAdminDeployer = {
  id: postgresAppAuthentication == 'entra' ? principalId : ''
  name: empty(postgresEntraAdminName) ? 'chorus_deployer' : postgresEntraAdminName
  type: principalType
}
var postgresEntraAdmin = !empty(postgresEntraAdminObjectId) ? postgresEntraAdminGiven : postgresEntraAdminDeployer

module postgres 'app/postgres.bicep' = {
  name: 'postgres'
  params: {
    location: location
    tags: tags
    serverName: names.postgres
    version: postgresVersion
    skuName: postgresSkuName
    skuTier: postgresSkuTier
    storageSizeGB: postgresStorageSizeGB
    highAvailability: postgresHighAvailability
    backupRetentionDays: postgresBackupRetentionDays
    geoRedundantBackup: postgresGeoRedundantBackup
    administratorLogin: postgresAdminLogin
    administratorPassword: postgresAdminPassword
    databaseName: postgresDatabaseName
    publicNetworkAccess: firewalledPublicAccess
    allowAzureServices: !networkIsolation && postgresAllowAzureServices
    allowedIpAddresses: allowedIps
    entraAuth: postgresAppAuthentication == 'entra'
    entraAdminObjectId: postgresEntraAdmin.id
    entraAdminName: postgresEntraAdmin.name
    entraAdminType: postgresEntraAdmin.type
  }
}

module eventHubs 'app/eventhubs.bicep' = {
  name: 'eventhubs'
  params: {
    location: location
    tags: tags
    namespaceName: names.eventHubs
    skuName: eventHubsSku
    capacity: eventHubsCapacity
    eventHubName: eventHubName
    partitionCount: eventHubPartitionCount
    retentionDays: eventHubRetentionDays
    publicNetworkAccess: dataPlanePublicAccess
  }
}

var postgresHost = postgres.outputs.fullyQualifiedDomainName
var postgresAppEntra = postgresAppAuthentication == 'entra'
// The app's PostgreSQL role with Entra: named after its identity, mapped to it by object id.
var postgresAppRole = postgresAppEntra ? names.identity : postgresAppLogin
// sslrootcert=system: libpq's own trust store where no bundle is named (the migration hook on an
// operator's machine); the app names its bundle (POSTGRES_SSL_ROOT_CERT), which takes precedence.
var postgresUrlTail = '@${postgresHost}:5432/${postgresDatabaseName}?sslmode=${postgresSslMode}${postgresSslMode == 'verify-full' ? '&sslrootcert=system' : ''}'
var postgresEntraUrl = 'postgresql://${uriComponent(postgresAppRole)}${postgresUrlTail}'
var postgresPasswordUrl = 'postgresql://${uriComponent(postgresAppLogin)}:${uriComponent(postgresAppPassword)}${postgresUrlTail}'
var cursorKeyValue = length(cursorSigningKey) >= 32 ? cursorSigningKey : '${cursorSigningKey}${cursorSigningKeyPadding}'

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    tags: tags
    vaultName: names.keyVault
    enablePurgeProtection: keyVaultPurgeProtection
    publicNetworkAccess: firewalledPublicAccess
    firewallDefaultAction: networkIsolation ? 'Deny' : 'Allow'
    allowedIpAddresses: allowedIps
    // With Entra the URL carries no password: each connection's password is a fresh token.
    postgresUrl: postgresAppEntra ? postgresEntraUrl : postgresPasswordUrl
    postgresAdminUrl: 'postgresql://${uriComponent(postgresAdminLogin)}:${uriComponent(postgresAdminPassword)}${postgresUrlTail}'
    postgresAdminPassword: postgresAdminPassword
    postgresAppPassword: postgresAppPassword
    cursorSigningKey: cursorKeyValue
  }
}

// ---------------------------------------------------------------------------------------
// Role assignments, then the app
// ---------------------------------------------------------------------------------------

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  params: {
    appPrincipalId: appIdentity.properties.principalId
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
    hostStorageName: hostStorage.outputs.name
    mediaStorageName: mediaStorage.outputs.name
    mediaContainerName: mediaContainerName
    exportsContainerName: exportsContainerName
    cosmosAccountName: cosmos.outputs.accountName
    cosmosDatabaseName: cosmos.outputs.databaseName
    eventHubsNamespaceName: eventHubs.outputs.namespaceName
    eventHubName: eventHubs.outputs.eventHubName
    keyVaultName: keyVault.outputs.name
    appSecretNames: [
      'postgres-url'
      'cursor-signing-key'
    ]
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

module api 'app/api.bicep' = {
  name: 'api'
  dependsOn: [
    rbac
  ]
  params: {
    location: location
    tags: tags
    planName: names.plan
    functionAppName: names.functionApp
    identityId: appIdentity.id
    identityClientId: appIdentity.properties.clientId
    hostStorageBlobEndpoint: hostStorage.outputs.blobEndpoint
    deploymentContainerName: names.deploymentContainer
    instanceMemoryMB: functionAppInstanceMemoryMB
    maximumInstanceCount: functionAppMaximumInstanceCount
    zoneRedundant: functionAppZoneRedundant
    appSubnetId: networkIsolation ? network.outputs.appSubnetId : ''
    corsAllowedOrigins: apiCorsOrigins
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    postgresUrlSecretUri: keyVault.outputs.postgresUrlSecretUri
    cursorSigningKeySecretUri: keyVault.outputs.cursorSigningKeySecretUri
    postgresPoolMin: postgresPoolMin
    postgresPoolMax: postgresPoolMax
    postgresEntraAuth: postgresAppEntra
    postgresSslRootCert: postgresSslRootCert
    cosmosEndpoint: cosmos.outputs.endpoint
    cosmosDatabaseName: cosmos.outputs.databaseName
    eventHubsFullyQualifiedNamespace: eventHubs.outputs.fullyQualifiedNamespace
    eventHubName: eventHubs.outputs.eventHubName
    mediaBlobEndpoint: mediaStorage.outputs.blobEndpoint
    mediaContainerName: mediaContainerName
    authIssuer: authIssuer
    authAudience: authAudience
    authJwksUrl: authJwksUrl
    authPublicKeysPem: authPublicKeysPem
    authRoleClaim: authRoleClaim
    maxRequestBodyBytes: maxRequestBodyBytes
    logLevel: logLevel
    additionalAppSettings: additionalAppSettings
  }
}

// Private endpoints (networkIsolation): one per data service the app reaches. The media
// account keeps its public endpoint for the clients' SAS uploads and downloads. The loop runs over
// constants (a for-expression must be known when the deployment starts); the target ids, which
// are module outputs, are looked up in the body.
var privateEndpointTargets = [
  {
    name: 'cosmos'
    groupId: 'Sql'
  }
  {
    name: 'postgres'
    groupId: 'postgresqlServer'
  }
  {
    name: 'eventHubs'
    groupId: 'namespace'
  }
  {
    name: 'keyVault'
    groupId: 'vault'
  }
  {
    name: 'blob'
    groupId: 'blob'
  }
]
var privateEndpointResourceIds = {
  cosmos: cosmos.outputs.accountId
  postgres: postgres.outputs.serverId
  eventHubs: eventHubs.outputs.namespaceId
  keyVault: keyVault.outputs.id
  blob: hostStorage.outputs.id
}

module privateEndpoints 'app/private-endpoint.bicep' = [for target in privateEndpointTargets: if (networkIsolation) {
  name: 'pe-${target.name}'
  params: {
    location: location
    tags: tags
    name: '${names.privateEndpointPrefix}${toLower(target.name)}-${resourceToken}'
    subnetId: networkIsolation ? network.outputs.privateEndpointSubnetId : ''
    targetResourceId: privateEndpointResourceIds[target.name]
    groupId: target.groupId
    // network.bicep keys its zones by the same names.
    privateDnsZoneId: networkIsolation ? network.outputs.privateDnsZoneIds[target.name] : ''
  }
}]

// ---------------------------------------------------------------------------------------
// Outputs: azd stores them in .azure/<env>/.env and passes them to hooks
// ---------------------------------------------------------------------------------------

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = resourceGroup().name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = api.outputs.uri
output API_BASE_URL string = '${api.outputs.uri}/api'
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = appIdentity.properties.clientId
output AZURE_MANAGED_IDENTITY_PRINCIPAL_ID string = appIdentity.properties.principalId
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_ENDPOINT string = keyVault.outputs.uri
output POSTGRES_SERVER_NAME string = postgres.outputs.serverName
output POSTGRES_HOST string = postgresHost
output POSTGRES_DATABASE string = postgresDatabaseName
output POSTGRES_ADMIN_LOGIN string = postgresAdminLogin
output POSTGRES_APP_LOGIN string = postgresAppRole
output POSTGRES_APP_AUTHENTICATION string = postgresAppAuthentication
output POSTGRES_ENTRA_ADMIN_NAME string = postgresEntraAdmin.name
output COSMOS_ACCOUNT_NAME string = cosmos.outputs.accountName
output COSMOS_ENDPOINT string = cosmos.outputs.endpoint
output COSMOS_DATABASE string = cosmos.outputs.databaseName
output EVENTHUBS_NAMESPACE string = eventHubs.outputs.fullyQualifiedNamespace
output EVENTHUB_NAME string = eventHubs.outputs.eventHubName
output MEDIA_STORAGE_ACCOUNT_NAME string = mediaStorage.outputs.name
output MEDIA_BLOB_ENDPOINT string = mediaStorage.outputs.blobEndpoint
output MEDIA_CONTAINER string = mediaContainerName
output HOST_STORAGE_ACCOUNT_NAME string = hostStorage.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output NETWORK_ISOLATION bool = networkIsolation
