package events

import "encoding/json"

// The data of the operational events: each names its tenant (tenantId),
// so the operator's copy, sent to the operator's own endpoint, says whose
// it is.

var schemaDisabled = json.RawMessage(`{
  "type": "object",
  "required": ["tenantId", "subscriptionId", "reason"],
  "properties": {
    "tenantId": {"type": "string"},
    "subscriptionId": {"type": "string"},
    "url": {"type": "string"},
    "reason": {"type": "string"}
  }
}`)

var exampleDisabled = json.RawMessage(`{"tenantId": "ten_01JD0000000000000000000000", "subscriptionId": "sub_01JD0000000000000000000000", "url": "https://example.com/hooks", "reason": "endpoint answered 410 Gone"}`)

var schemaExhausted = json.RawMessage(`{
  "type": "object",
  "required": ["tenantId", "deliveryId", "subscriptionId", "eventId", "eventType", "attempts"],
  "properties": {
    "tenantId": {"type": "string"},
    "deliveryId": {"type": "string"},
    "subscriptionId": {"type": "string"},
    "eventId": {"type": "string"},
    "eventType": {"type": "string"},
    "attempts": {"type": "integer"}
  }
}`)

var exampleExhausted = json.RawMessage(`{"tenantId": "ten_01JD0000000000000000000000", "deliveryId": "dlv_01JD0000000000000000000000", "subscriptionId": "sub_01JD0000000000000000000000", "eventId": "evt_01JD0000000000000000000000", "eventType": "ticket.updated", "attempts": 8}`)

var schemaFailing = json.RawMessage(`{
  "type": "object",
  "required": ["tenantId", "subscriptionId", "url", "failures", "failingSince"],
  "properties": {
    "tenantId": {"type": "string"},
    "subscriptionId": {"type": "string"},
    "url": {"type": "string"},
    "failures": {"type": "integer", "description": "failed attempts in a row"},
    "failingSince": {"type": "string", "format": "date-time", "description": "the first failed attempt of the run"},
    "lastError": {"type": "string"},
    "lastStatusCode": {"type": "integer"}
  }
}`)

var exampleFailing = json.RawMessage(`{"tenantId": "ten_01JD0000000000000000000000", "subscriptionId": "sub_01JD0000000000000000000000", "url": "https://example.com/hooks", "failures": 5, "failingSince": "2026-12-03T09:00:00Z", "lastError": "endpoint answered 500", "lastStatusCode": 500}`)

var schemaRecovered = json.RawMessage(`{
  "type": "object",
  "required": ["tenantId", "subscriptionId", "url", "failingSince", "recoveredAt"],
  "properties": {
    "tenantId": {"type": "string"},
    "subscriptionId": {"type": "string"},
    "url": {"type": "string"},
    "failingSince": {"type": "string", "format": "date-time"},
    "failingAt": {"type": "string", "format": "date-time", "description": "when subscription.failing was sent"},
    "recoveredAt": {"type": "string", "format": "date-time"}
  }
}`)

var exampleRecovered = json.RawMessage(`{"tenantId": "ten_01JD0000000000000000000000", "subscriptionId": "sub_01JD0000000000000000000000", "url": "https://example.com/hooks", "failingSince": "2026-12-03T09:00:00Z", "failingAt": "2026-12-03T09:03:00Z", "recoveredAt": "2026-12-03T09:42:10Z"}`)

var schemaLimit = json.RawMessage(`{
  "type": "object",
  "required": ["tenantId", "limit", "max", "used", "at"],
  "properties": {
    "tenantId": {"type": "string"},
    "limit": {"type": "string", "description": "the limit's name, as in GET /api/limits"},
    "max": {"type": "integer"},
    "used": {"type": "integer"},
    "at": {"type": "string", "format": "date-time"}
  }
}`)

var exampleLimitNear = json.RawMessage(`{"tenantId": "ten_01JD0000000000000000000000", "limit": "subscriptions", "max": 100, "used": 80, "at": "2026-12-03T09:15:00Z"}`)

var exampleLimitExceeded = json.RawMessage(`{"tenantId": "ten_01JD0000000000000000000000", "limit": "requestsPerMinute", "max": 100, "used": 100, "at": "2026-12-03T09:15:00Z"}`)

var schemaJob = json.RawMessage(`{
  "type": "object",
  "required": ["tenantId", "jobId", "kind", "status", "total", "sent", "filtered", "createdAt", "finishedAt"],
  "properties": {
    "tenantId": {"type": "string"},
    "jobId": {"type": "string"},
    "kind": {"type": "string", "enum": ["replay", "recover"]},
    "subscriptionId": {"type": "string"},
    "status": {"type": "string", "enum": ["done", "failed"]},
    "total": {"type": "integer"},
    "sent": {"type": "integer"},
    "filtered": {"type": "integer"},
    "error": {"type": "string"},
    "createdAt": {"type": "string", "format": "date-time"},
    "finishedAt": {"type": "string", "format": "date-time"}
  }
}`)

var exampleJob = json.RawMessage(`{"tenantId": "ten_01JD0000000000000000000000", "jobId": "job_01JD0000000000000000000000", "kind": "replay", "subscriptionId": "sub_01JD0000000000000000000000", "status": "done", "total": 1200, "sent": 1200, "filtered": 0, "createdAt": "2026-12-03T09:00:00Z", "finishedAt": "2026-12-03T09:00:08Z"}`)

var schemaCertificate = json.RawMessage(`{
  "type": "object",
  "required": ["tenantId", "subscriptionId", "url", "subject", "certificateExpiresAt", "daysLeft", "expired"],
  "properties": {
    "tenantId": {"type": "string"},
    "subscriptionId": {"type": "string"},
    "url": {"type": "string"},
    "subject": {"type": "string", "description": "the client certificate's subject (empty for one named only by its SAN)"},
    "certificateExpiresAt": {"type": "string", "format": "date-time", "description": "the certificate's notAfter"},
    "daysLeft": {"type": "integer", "minimum": 0, "description": "whole days until certificateExpiresAt; 0 once expired"},
    "expired": {"type": "boolean", "description": "true in the second event, sent once the certificate has expired"}
  }
}`)

var exampleCertificate = json.RawMessage(`{"tenantId": "ten_01JD0000000000000000000000", "subscriptionId": "sub_01JD0000000000000000000000", "url": "https://example.com/hooks", "subject": "CN=webhooks-client,O=Example", "certificateExpiresAt": "2026-12-17T09:00:00Z", "daysLeft": 13, "expired": false}`)
