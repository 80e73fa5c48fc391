// networkIsolation: a virtual network with a subnet for the Function App (delegated to
// Microsoft.App/environments, as Flex Consumption requires) and one for private endpoints, a NAT
// gateway for the app's outbound internet traffic (JWKS, Application Insights ingestion: the
// subnets have no default outbound access), and the private DNS zones the endpoints register in.

param location string
param tags object
param vnetName string
param nsgName string
param natGatewayName string
param publicIpName string
param vnetAddressPrefix string
param appSubnetPrefix string
param privateEndpointSubnetPrefix string

// Public-cloud zone names; blob follows the cloud's storage suffix.
var privateDnsZoneNames = {
  cosmos: 'privatelink.documents.azure.com'
  postgres: 'privatelink.postgres.database.azure.com'
  eventHubs: 'privatelink.servicebus.windows.net'
  keyVault: 'privatelink.vaultcore.azure.net'
  blob: 'privatelink.blob.${environment().suffixes.storage}'
}
var privateDnsZoneList = [
  privateDnsZoneNames.cosmos
  privateDnsZoneNames.postgres
  privateDnsZoneNames.eventHubs
  privateDnsZoneNames.keyVault
  privateDnsZoneNames.blob
]

// No inbound rules of its own: the defaults allow traffic inside the virtual network only.
resource nsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: nsgName
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource publicIp 'Microsoft.Network/publicIPAddresses@2024-05-01' = {
  name: publicIpName
  location: location
  tags: tags
  sku: {
    name: 'Standard'
  }
  properties: {
    publicIPAllocationMethod: 'Static'
    publicIPAddressVersion: 'IPv4'
  }
}

resource natGateway 'Microsoft.Network/natGateways@2024-05-01' = {
  name: natGatewayName
  location: location
  tags: tags
  sku: {
    name: 'Standard'
  }
  properties: {
    idleTimeoutInMinutes: 4
    publicIpAddresses: [
      {
        id: publicIp.id
      }
    ]
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: vnetName
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        vnetAddressPrefix
      ]
    }
    subnets: [
      {
        name: 'app'
        properties: {
          addressPrefix: appSubnetPrefix
          defaultOutboundAccess: false
          networkSecurityGroup: {
            id: nsg.id
          }
          natGateway: {
            id: natGateway.id
          }
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
      {
        name: 'private-endpoints'
        properties: {
          addressPrefix: privateEndpointSubnetPrefix
          defaultOutboundAccess: false
          networkSecurityGroup: {
            id: nsg.id
          }
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
    ]
  }
}

resource zones 'Microsoft.Network/privateDnsZones@2020-06-01' = [for zoneName in privateDnsZoneList: {
  name: zoneName
  location: 'global'
  tags: tags
}]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [for (zoneName, i) in privateDnsZoneList: {
  parent: zones[i]
  name: '${vnetName}-link'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnet.id
    }
  }
}]

output vnetId string = vnet.id
output appSubnetId string = vnet.properties.subnets[0].id
output privateEndpointSubnetId string = vnet.properties.subnets[1].id
// zone key -> private DNS zone id
output privateDnsZoneIds object = {
  cosmos: resourceId('Microsoft.Network/privateDnsZones', privateDnsZoneNames.cosmos)
  postgres: resourceId('Microsoft.Network/privateDnsZones', privateDnsZoneNames.postgres)
  eventHubs: resourceId('Microsoft.Network/privateDnsZones', privateDnsZoneNames.eventHubs)
  keyVault: resourceId('Microsoft.Network/privateDnsZones', privateDnsZoneNames.keyVault)
  blob: resourceId('Microsoft.Network/privateDnsZones', privateDnsZoneNames.blob)
}
