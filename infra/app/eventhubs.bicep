// Event Hubs: a namespace with SAS keys disabled (Microsoft Entra only) and the one hub that
// carries every integration event, partitioned by aggregate id.

param location string
param tags object
param namespaceName string

@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param skuName string

param capacity int
param eventHubName string
param partitionCount int
param retentionDays int

@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: namespaceName
  location: location
  tags: tags
  sku: {
    name: skuName
    tier: skuName
    capacity: capacity
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: publicNetworkAccess
    isAutoInflateEnabled: false
    zoneRedundant: skuName == 'Premium'
  }
}

resource hub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: namespace
  name: eventHubName
  properties: {
    partitionCount: partitionCount
    messageRetentionInDays: retentionDays
  }
}

output namespaceName string = namespace.name
output namespaceId string = namespace.id
// EventHubs__fullyQualifiedNamespace: "<namespace>.servicebus.windows.net" (from the endpoint, so
// other clouds get their own suffix).
output fullyQualifiedNamespace string = split(split(namespace.properties.serviceBusEndpoint, '//')[1], ':')[0]
output eventHubName string = hub.name
