// Role assignments, least privilege, each on the narrowest scope that works:
//
// the app's identity
//   host storage account   Storage Blob Data Owner        AzureWebJobsStorage (leases, host
//                                                          state) and the deployment package
//   media container        Storage Blob Data Contributor  read/write media blobs, that container only
//   exports container      Storage Blob Data Contributor  large account exports, that container only
//   media account          Storage Blob Delegator         user-delegation keys for SAS URLs
//   Cosmos DB database     Built-in Data Contributor      projections, change feed and leases
//   the event hub          Azure Event Hubs Data Sender   publish integration events
//   two Key Vault secrets  Key Vault Secrets User         postgres-url and cursor-signing-key
//   Application Insights   Monitoring Metrics Publisher   telemetry without the instrumentation key
//
// the deployer (optional)
//   Key Vault              Key Vault Secrets User         azd reads back the generated passwords,
//                                                          the migration hook reads the admin URL

@description('Principal id of the app\'s user-assigned identity.')
param appPrincipalId string

@description('Object id of the deployer; empty: no role.')
param deployerPrincipalId string
param deployerPrincipalType string

param hostStorageName string
param mediaStorageName string
param mediaContainerName string
param exportsContainerName string
param cosmosAccountName string
param cosmosDatabaseName string
param eventHubsNamespaceName string
param eventHubName string
param keyVaultName string

@description('Names of the secrets the app may read.')
param appSecretNames array

param applicationInsightsName string

var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageBlobDelegator: 'db58b8e5-c6ad-4a2a-8342-4190687cbf4a'
  eventHubsDataSender: '2b629674-e913-4c01-ae53-ef4638d8f975'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

// Cosmos DB data-plane roles are not Azure RBAC roles: they are sqlRoleDefinitions of the account.
var cosmosDataContributorRoleId = '00000000-0000-0000-0000-000000000002'

resource hostStorage 'Microsoft.Storage/storageAccounts@2024-01-01' existing = {
  name: hostStorageName
}

resource mediaStorage 'Microsoft.Storage/storageAccounts@2024-01-01' existing = {
  name: mediaStorageName

  resource blobService 'blobServices' existing = {
    name: 'default'

    resource mediaContainer 'containers' existing = {
      name: mediaContainerName
    }

    resource exportsContainer 'containers' existing = {
      name: exportsContainerName
    }
  }
}

resource cosmosAccount 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' existing = {
  name: cosmosAccountName
}

resource eventHubsNamespace 'Microsoft.EventHub/namespaces@2024-01-01' existing = {
  name: eventHubsNamespaceName

  resource hub 'eventhubs' existing = {
    name: eventHubName
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource appSecrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = [for secretName in appSecretNames: {
  parent: vault
  name: secretName
}]

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource hostStorageOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, appPrincipalId, roles.storageBlobDataOwner)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource mediaContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(mediaStorage::blobService::mediaContainer.id, appPrincipalId, roles.storageBlobDataContributor)
  scope: mediaStorage::blobService::mediaContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource exportsContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(mediaStorage::blobService::exportsContainer.id, appPrincipalId, roles.storageBlobDataContributor)
  scope: mediaStorage::blobService::exportsContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource mediaDelegator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(mediaStorage.id, appPrincipalId, roles.storageBlobDelegator)
  scope: mediaStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDelegator)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource cosmosContributor 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = {
  parent: cosmosAccount
  name: guid(cosmosAccount.id, cosmosDatabaseName, appPrincipalId, cosmosDataContributorRoleId)
  properties: {
    roleDefinitionId: '${cosmosAccount.id}/sqlRoleDefinitions/${cosmosDataContributorRoleId}'
    principalId: appPrincipalId
    // The database only, not the whole account.
    scope: '${cosmosAccount.id}/dbs/${cosmosDatabaseName}'
  }
}

resource eventHubSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(eventHubsNamespace::hub.id, appPrincipalId, roles.eventHubsDataSender)
  scope: eventHubsNamespace::hub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventHubsDataSender)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appSecretReaders 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (secretName, i) in appSecretNames: {
  name: guid(vault.id, secretName, appPrincipalId, roles.keyVaultSecretsUser)
  scope: appSecrets[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

resource telemetryPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, appPrincipalId, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource deployerSecretsReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(vault.id, deployerPrincipalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
  }
}
