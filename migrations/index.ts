import type { Migration } from 'kysely';
import { initial } from './0001_initial.js';
import { deliverySchedule } from './0002_delivery_schedule.js';
import { runs } from './0003_runs.js';
import { botbleLicenseStates } from './0004_botble_license_states.js';
import { eventInstants } from './0005_event_instants.js';
import { bigLicenseIds } from './0006_big_license_ids.js';
import { longTexts } from './0007_long_texts.js';
import { endpoints } from './0008_endpoints.js';
import { retries } from './0009_retries.js';
import { monitoring } from './0010_monitoring.js';
import { deliveryTotals } from './0011_delivery_totals.js';

/** Every migration, by name in the order they apply. A static list: no stale file in dist/ is ever picked up. */
export const migrations: Record<string, Migration> = {
  '0001_initial': initial,
  '0002_delivery_schedule': deliverySchedule,
  '0003_runs': runs,
  '0004_botble_license_states': botbleLicenseStates,
  '0005_event_instants': eventInstants,
  '0006_big_license_ids': bigLicenseIds,
  '0007_long_texts': longTexts,
  '0008_endpoints': endpoints,
  '0009_retries': retries,
  '0010_monitoring': monitoring,
  '0011_delivery_totals': deliveryTotals,
};
