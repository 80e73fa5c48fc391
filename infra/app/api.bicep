// The Function App on a Flex Consumption plan (Linux, Python 3.11) and every app setting the
// bindings and shared_code read. The runtime is declared in functionAppConfig.runtime, so
// FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION are not app settings here (Flex
// Consumption deprecates them), nor is siteConfig.ftpsState (Flex rejects it; FTP is off below).

param location string
param tags object
param planName string
param functionAppName string

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Client id of that identity (AZURE_CLIENT_ID and every __clientId setting).')
param identityClientId string

@description('Blob endpoint of the host storage account (AzureWebJobsStorage and the deployment package).')
param hostStorageBlobEndpoint string
param deploymentContainerName string

param instanceMemoryMB int
param maximumInstanceCount int

@description('Spread instances across availability zones (regions with zones only).')
param zoneRedundant bool

@description('Subnet for virtual network integration; empty: none.')
param appSubnetId string

param corsAllowedOrigins array
param applicationInsightsConnectionString string

@description('Versionless URI of the postgres-url secret.')
param postgresUrlSecretUri string

@description('Versionless URI of the cursor-signing-key secret.')
param cursorSigningKeySecretUri string

param postgresPoolMin int
param postgresPoolMax int

@description('POSTGRES_ENTRA_AUTH: the app logs in to PostgreSQL with a Microsoft Entra token of its identity.')
param postgresEntraAuth bool

@description('POSTGRES_SSL_ROOT_CERT: the CA bundle sslmode=verify-full checks the server against.')
param postgresSslRootCert string
param cosmosEndpoint string
param cosmosDatabaseName string
param eventHubsFullyQualifiedNamespace string
param eventHubName string
param mediaBlobEndpoint string
param mediaContainerName string
param authIssuer string
param authAudience string
param authJwksUrl string
param authPublicKeysPem string
param authRoleClaim string
param maxRequestBodyBytes int
param logLevel string
param additionalAppSettings object

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: functionAppName
  location: location
  // azd finds the target of `azd deploy` by this tag (service "api" in azure.yaml).
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // The HTTP API is public by design; callers authenticate with bearer tokens.
    publicNetworkAccess: 'Enabled'
    // Key Vault references resolve with the app's user-assigned identity.
    keyVaultReferenceIdentity: identityId
    virtualNetworkSubnetId: empty(appSubnetId) ? null : appSubnetId
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
      cors: {
        allowedOrigins: corsAllowedOrigins
        supportCredentials: false
      }
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Deployments authenticate with Microsoft Entra (azd, az); no publishing passwords.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

var managedIdentity = 'managedidentity'

// Every setting shared_code/settings.py and the bindings read. The local connection-string
// settings (CosmosDB, EventHubs, MediaStorage, AzureWebJobsStorage) take their identity-based
// form here: NAME__<endpoint> + NAME__credential + NAME__clientId. tests/infra checks that
// this covers local.settings.example.json.
var appSettings = {
  // Functions host storage, with the identity.
  AzureWebJobsStorage__blobServiceUri: hostStorageBlobEndpoint
  AzureWebJobsStorage__credential: managedIdentity
  AzureWebJobsStorage__clientId: identityClientId

  // Application Insights with Entra authentication (local auth is disabled on the component).
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'

  // DefaultAzureCredential in shared_code picks the user-assigned identity by this.
  AZURE_CLIENT_ID: identityClientId

  // PostgreSQL: the libpq URL of the app login, from Key Vault.
  POSTGRES_URL: '@Microsoft.KeyVault(SecretUri=${postgresUrlSecretUri})'
  POSTGRES_POOL_MIN: string(postgresPoolMin)
  POSTGRES_POOL_MAX: string(postgresPoolMax)
  POSTGRES_ENTRA_AUTH: postgresEntraAuth ? 'true' : 'false'
  POSTGRES_SSL_ROOT_CERT: postgresSslRootCert

  // Cosmos DB: shared_code and the change feed trigger (connection "CosmosDB").
  CosmosDB__accountEndpoint: cosmosEndpoint
  CosmosDB__credential: managedIdentity
  CosmosDB__clientId: identityClientId
  COSMOS_DATABASE: cosmosDatabaseName

  // Event Hubs producer.
  EventHubs__fullyQualifiedNamespace: eventHubsFullyQualifiedNamespace
  EventHubs__credential: managedIdentity
  EventHubs__clientId: identityClientId
  EVENTHUB_NAME: eventHubName

  // Media blobs (user-delegation SAS, signed with the identity).
  MediaStorage__blobServiceUri: mediaBlobEndpoint
  MediaStorage__credential: managedIdentity
  MediaStorage__clientId: identityClientId
  MEDIA_CONTAINER: mediaContainerName

  // Bearer tokens.
  AUTH_ISSUER: authIssuer
  AUTH_AUDIENCE: authAudience
  AUTH_JWKS_URL: authJwksUrl
  AUTH_PUBLIC_KEYS_PEM: authPublicKeysPem
  AUTH_ROLE_CLAIM: authRoleClaim
  CURSOR_SIGNING_KEY: '@Microsoft.KeyVault(SecretUri=${cursorSigningKeySecretUri})'

  MAX_REQUEST_BODY_BYTES: string(maxRequestBodyBytes)
  // The Functions host refuses a larger declared body itself, before the worker reads it.
  FUNCTIONS_REQUEST_BODY_SIZE_LIMIT: string(maxRequestBodyBytes)
  LOG_LEVEL: logLevel
}

// Operational tunables (outbox relay, fan-out, health): plain values with the names of
// local.settings.example.json, kept in one JSON file so adding one needs no Bicep.
var tunables = loadJsonContent('../app-settings.json')

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'appsettings'
  properties: union(appSettings, tunables, additionalAppSettings)
}

output name string = functionApp.name
output uri string = 'https://${functionApp.properties.defaultHostName}'
