// Azure Database for PostgreSQL Flexible Server: the server, the app database, citext allow-listed
// for the migrations, optional Microsoft Entra administrator, and the firewall.
//
// Server-level changes (configurations, firewall rules, administrators) conflict when they run in
// parallel ("ServerIsBusy"), so they are chained with dependsOn and @batchSize(1).

param location string
param tags object
param serverName string
param version string
param skuName string
param skuTier string
param storageSizeGB int
param highAvailability bool
param backupRetentionDays int
param geoRedundantBackup bool
param administratorLogin string

@secure()
param administratorPassword string

param databaseName string

@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string

@description('Adds the 0.0.0.0 rule that lets every Azure resource of any tenant in (a Flex Consumption app without virtual network integration has no fixed outbound address). main.bicep sets it only on request (postgresAllowAzureServices).')
param allowAzureServices bool

@description('IPv4 addresses allowed through the firewall.')
param allowedIpAddresses array

@description('The app logs in with its managed identity (Microsoft Entra); passwords stay on for the owner.')
param entraAuth bool

param entraAdminObjectId string
param entraAdminName string
param entraAdminType string

var useEntra = entraAuth || !empty(entraAdminObjectId)
var hasEntraAdmin = !empty(entraAdminObjectId)
var azureServicesRule = [
  {
    name: 'AllowAllAzureServicesAndResourcesWithinAzureIps'
    start: '0.0.0.0'
    end: '0.0.0.0'
  }
]
var operatorRules = [for ip in allowedIpAddresses: {
  name: 'operator-${replace(ip, '.', '-')}'
  start: ip
  end: ip
}]
var firewallRules = concat(allowAzureServices ? azureServicesRule : [], operatorRules)

resource server 'Microsoft.DBforPostgreSQL/flexibleServers@2025-08-01' = {
  name: serverName
  location: location
  tags: tags
  sku: {
    name: skuName
    tier: skuTier
  }
  properties: {
    version: version
    administratorLogin: administratorLogin
    administratorLoginPassword: administratorPassword
    authConfig: {
      activeDirectoryAuth: useEntra ? 'Enabled' : 'Disabled'
      passwordAuth: 'Enabled'
      tenantId: tenant().tenantId
    }
    storage: {
      storageSizeGB: storageSizeGB
      autoGrow: 'Enabled'
    }
    backup: {
      backupRetentionDays: backupRetentionDays
      geoRedundantBackup: geoRedundantBackup ? 'Enabled' : 'Disabled'
    }
    highAvailability: {
      mode: highAvailability ? 'ZoneRedundant' : 'Disabled'
    }
    network: {
      publicNetworkAccess: publicNetworkAccess
    }
  }
}

// citext and unaccent are used by the migrations (sql/0001_extensions.sql, sql/0019_...: user
// search); Azure only lets allow-listed extensions be created.
resource allowedExtensions 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2025-08-01' = {
  parent: server
  name: 'azure.extensions'
  properties: {
    value: 'CITEXT,UNACCENT'
    source: 'user-override'
  }
}

resource database 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2025-08-01' = {
  parent: server
  name: databaseName
  dependsOn: [
    allowedExtensions
  ]
  properties: {
    charset: 'UTF8'
    collation: 'en_US.utf8'
  }
}

resource entraAdmin 'Microsoft.DBforPostgreSQL/flexibleServers/administrators@2024-08-01' = if (hasEntraAdmin) {
  parent: server
  name: hasEntraAdmin ? entraAdminObjectId : 'none'
  dependsOn: [
    database
  ]
  properties: {
    principalName: entraAdminName
    principalType: entraAdminType
    tenantId: tenant().tenantId
  }
}

@batchSize(1)
resource rules 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2025-08-01' = [for rule in firewallRules: if (publicNetworkAccess == 'Enabled') {
  parent: server
  name: rule.name
  dependsOn: [
    database
    entraAdmin
  ]
  properties: {
    startIpAddress: rule.start
    endIpAddress: rule.end
  }
}]

output serverName string = server.name
output serverId string = server.id
output fullyQualifiedDomainName string = server.properties.fullyQualifiedDomainName
output databaseName string = database.name
