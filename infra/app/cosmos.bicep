// Cosmos DB for NoSQL: the account (keys disabled), the database and one container per file in
// cosmos_indexes/. Each of those files IS the container's `resource` object (id, partitionKey,
// indexingPolicy, defaultTtl, uniqueKeyPolicy), so cosmos_indexes/ is the single source for the
// local emulator and for Azure. Bicep cannot list a directory: every file is named below, and
// tests/infra/test_bicep.py fails when this list and the directory differ.

param location string
param tags object
param accountName string
param databaseName string

@allowed([
  'serverless'
  'autoscale'
])
param capacityMode string

@description('Autoscale ceiling (RU/s) shared by the containers; autoscale only.')
param autoscaleMaxThroughput int

@description('Continuous backup with 7 days of point-in-time restore.')
param continuousBackup bool

@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string

var containerDefinitions = [
  loadJsonContent('../../cosmos_indexes/authorPosts.json')
  loadJsonContent('../../cosmos_indexes/counters.json')
  loadJsonContent('../../cosmos_indexes/leases.json')
  loadJsonContent('../../cosmos_indexes/messages.json')
  loadJsonContent('../../cosmos_indexes/notifications.json')
  loadJsonContent('../../cosmos_indexes/posts_v2.json')
  loadJsonContent('../../cosmos_indexes/publicProfiles.json')
  loadJsonContent('../../cosmos_indexes/reactions.json')
  loadJsonContent('../../cosmos_indexes/userFeed.json')
]

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' = {
  name: accountName
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    consistencyPolicy: {
      defaultConsistencyLevel: 'Session'
    }
    locations: [
      {
        locationName: location
        failoverPriority: 0
        isZoneRedundant: false
      }
    ]
    capabilities: capacityMode == 'serverless' ? [
      {
        name: 'EnableServerless'
      }
    ] : []
    // Microsoft Entra only: no account keys, no resource tokens, no key-based control plane writes.
    disableLocalAuth: true
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: publicNetworkAccess
    isVirtualNetworkFilterEnabled: false
    networkAclBypass: 'None'
    enableAutomaticFailover: false
    enableMultipleWriteLocations: false
    backupPolicy: continuousBackup ? {
      type: 'Continuous'
      continuousModeProperties: {
        tier: 'Continuous7Days'
      }
    } : {
      type: 'Periodic'
      periodicModeProperties: {
        backupIntervalInMinutes: 240
        backupRetentionIntervalInHours: 8
        backupStorageRedundancy: 'Local'
      }
    }
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-11-15' = {
  parent: account
  name: databaseName
  properties: {
    resource: {
      id: databaseName
    }
    options: capacityMode == 'autoscale' ? {
      autoscaleSettings: {
        maxThroughput: autoscaleMaxThroughput
      }
    } : {}
  }
}

// Each definition is used whole: partition key, indexing policy (with composite indexes), default
// TTL and unique keys come from the file, never from here.
resource containers 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = [for definition in containerDefinitions: {
  parent: database
  name: definition.id
  properties: {
    resource: definition
  }
}]

output accountName string = account.name
output accountId string = account.id
output endpoint string = account.properties.documentEndpoint
output databaseName string = database.name
output containerNames array = [for (definition, i) in containerDefinitions: containers[i].name]
