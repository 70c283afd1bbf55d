// The wire vocabulary: the event types receivers see in `event` and in X-Webhook-Event (the reference's three).
export const EVENT_TYPES = ['license.expiring', 'license.expired', 'license.update_support_expired'] as const;
export type EventType = (typeof EVENT_TYPES)[number];
