// What operators see: alert rules on the app's own metrics (shared_code/metrics.py names them;
// docs/observability.md says what each means and what to do), an e-mail action group when an
// address is given, and a workbook that charts every metric.
//
// OpenTelemetry metrics land in Application Insights' customMetrics table under their own names
// (value = the gauge's value, or the counter's increase since the last export), so the rules are log
// search alerts over that table. Each instance of the app reports the same backlog gauges (they
// read PostgreSQL), so the rules and the workbook take the maximum or the minimum, never the sum.

param location string
param tags object

@description('Resource id of the Application Insights component the app exports to.')
param applicationInsightsId string

@description('Where alerts are e-mailed. Empty: no action group; the alerts still show in the portal.')
param alertEmailAddress string

@minValue(1)
@description('Alert when the oldest pending outbox event stays older than this (seconds) for 5 minutes.')
param outboxLagSeconds int

param actionGroupName string
param alertRuleNamePrefix string
param workbookDisplayName string

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmailAddress)) {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'chorus-ops'
    enabled: true
    emailReceivers: [
      {
        name: 'operators'
        emailAddress: alertEmailAddress
        useCommonAlertSchema: true
      }
    ]
  }
}

var actionGroupIds = empty(alertEmailAddress) ? [] : [
  actionGroup.id
]

// One entry per rule: the metric, how a 5-minute window of it is reduced, and the threshold it must
// exceed. Each description names its section of docs/observability.md.
var rules = [
  {
    key: 'outbox-lag'
    displayName: 'Chorus: the outbox is lagging'
    description: 'The oldest pending outbox event stayed older than ${outboxLagSeconds} s for 5 minutes: projections and Event Hubs are behind PostgreSQL. Runbook: docs/observability.md#outbox-lag'
    severity: 2
    metric: 'chorus.outbox.oldest_pending_age_seconds'
    timeAggregation: 'Minimum'
    threshold: outboxLagSeconds
  }
  {
    key: 'outbox-dead'
    displayName: 'Chorus: dead outbox events'
    description: 'At least one outbox event used up its attempts; it blocks the later events of its aggregate until an operator requeues or skips it. Runbook: docs/observability.md#outbox-dead'
    severity: 1
    metric: 'chorus.outbox.dead'
    timeAggregation: 'Maximum'
    threshold: 0
  }
  {
    key: 'change-feed-failures'
    displayName: 'Chorus: open change-feed failures'
    description: 'A change-feed batch failed past its retries and is recorded for replay: some feeds, counters or notifications miss its changes until it is replayed. Runbook: docs/observability.md#open-change-feed-failures'
    severity: 1
    metric: 'chorus.change_feed.open_failures'
    timeAggregation: 'Maximum'
    threshold: 0
  }
]

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for rule in rules: {
  name: '${alertRuleNamePrefix}${rule.key}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: rule.displayName
    description: rule.description
    severity: rule.severity
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: 'customMetrics | where name == "${rule.metric}" | project timestamp, value'
          timeAggregation: rule.timeAggregation
          metricMeasureColumn: 'value'
          operator: 'GreaterThan'
          threshold: rule.threshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroupIds
    }
  }
}]

// A shared workbook, opened from the Application Insights component (Workbooks); its queries run
// against that component (sourceId).
resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, applicationInsightsId, 'chorus-operations')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: workbookDisplayName
    category: 'workbook'
    sourceId: applicationInsightsId
    serializedData: loadTextContent('workbook.json')
  }
}

output alertRuleNames array = [for (rule, i) in rules: alertRules[i].name]
output workbookId string = workbook.id
