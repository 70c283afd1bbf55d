import { maskCredentials } from '../credentials.js';
import type { EffectiveSetting, ResolvedConfig } from '../config/settings.js';

/** Where deliveries go and whether they go at all, with the layer that set each (env, settings, config, default). */
export interface WebhookTarget {
  /** Credentials in the URL are masked. */
  url: string | null;
  urlSource: string;
  enabled: boolean;
  enabledSource: string;
}

/** A setting's layer as one phrase: `settings`, `env LICENSE_MANAGER_WEBHOOK_URL`, `config /etc/license-manager/config.json`. */
export function layerOf(setting: EffectiveSetting): string {
  if (!setting.origin) return setting.source;
  // "Botble setting lm_webhook_url" already names its layer: not "botble Botble setting …".
  return setting.origin.toLowerCase().startsWith(setting.source.toLowerCase()) ? setting.origin : `${setting.source} ${setting.origin}`;
}

export function webhookTarget(context: Pick<ResolvedConfig, 'config' | 'settings'>): WebhookTarget {
  const setting = (key: string) => context.settings.find((candidate) => candidate.key === key)!;
  const { url, enabled } = context.config.webhooks;
  return {
    url: url === null ? null : maskCredentials(url),
    urlSource: layerOf(setting('webhook-url')),
    enabled,
    enabledSource: layerOf(setting('webhooks-enabled')),
  };
}
