/**
 * Cadenza's custom search attributes (workflows/definitions.ts: CadenzaPhase, CadenzaIssue,
 * CadenzaRepo) on the namespace its workers use. The embedded dev server gets them at start
 * (`--search-attribute`); on any other server a worker (and `cadenza up`) registers the missing ones
 * through the operator service at start. Ones already there are left alone; one there with another
 * type, or a server that refuses to add them (no permission; Temporal Cloud, where they are added
 * with its own tools), stops the start with a message naming what to add and how.
 */
import type { Connection } from '@temporalio/client';
import { SearchAttributeType } from '@temporalio/common';
import { InfraError } from '../infra/log.ts';
import { issueKey, phaseKey, repoKey } from '../workflows/definitions.ts';
import { explainRefusal, type TemporalSettings } from './connection.ts';

/** The search attribute types as Temporal's CLI and UI name them, and as the API numbers them (IndexedValueType). */
const TYPES: Record<SearchAttributeType, { name: string; api: number }> = {
  [SearchAttributeType.TEXT]: { name: 'Text', api: 1 },
  [SearchAttributeType.KEYWORD]: { name: 'Keyword', api: 2 },
  [SearchAttributeType.INT]: { name: 'Int', api: 3 },
  [SearchAttributeType.DOUBLE]: { name: 'Double', api: 4 },
  [SearchAttributeType.BOOL]: { name: 'Bool', api: 5 },
  [SearchAttributeType.DATETIME]: { name: 'Datetime', api: 6 },
  [SearchAttributeType.KEYWORD_LIST]: { name: 'KeywordList', api: 7 },
};

export interface SearchAttributeSpec {
  name: string;
  /** As the Temporal CLI takes it (`--type Keyword`). */
  type: string;
  /** As the API numbers it (IndexedValueType). */
  api: number;
}

const spec = (key: { name: string; type: SearchAttributeType }): SearchAttributeSpec => ({ name: key.name, type: TYPES[key.type].name, api: TYPES[key.type].api });

/** Every search attribute Cadenza's workflows set and its clients query. */
export const CADENZA_SEARCH_ATTRIBUTES: readonly SearchAttributeSpec[] = [phaseKey, issueKey, repoKey].map(spec);

const typeName = (api: number | undefined) => Object.values(TYPES).find((type) => type.api === api)?.name ?? `type #${api}`;

/** The commands that add `missing` to `namespace`: the Temporal CLI for a cluster, tcld for Temporal Cloud. */
export function howToAdd(namespace: string, missing: readonly SearchAttributeSpec[]): string {
  const cli = `temporal operator search-attribute create --namespace ${namespace} ${missing.map((attribute) => `--name ${attribute.name} --type ${attribute.type}`).join(' ')}`;
  const cloud = `tcld namespace search-attributes add --namespace ${namespace} ${missing.map((attribute) => `--search-attribute ${attribute.name}=${attribute.type}`).join(' ')}`;
  return `add them once with credentials allowed to change the namespace: on a Temporal cluster \`${cli}\`; on Temporal Cloud \`${cloud}\` (or in the Cloud UI: Namespaces > ${namespace} > Search attributes); then start again.`;
}

export interface SearchAttributesResult {
  /** Registered by this call. */
  added: string[];
  /** Already there with the right type (left alone). */
  present: string[];
}

/** The part of a connection (client or worker) this needs. */
type OperatorService = Connection['operatorService'];
interface OperatorConnection {
  operatorService: Pick<OperatorService, 'listSearchAttributes' | 'addSearchAttributes'>;
}

/** Makes sure the namespace has Cadenza's search attributes, adding the missing ones. */
export async function ensureSearchAttributes(connection: OperatorConnection, settings: TemporalSettings, wanted: readonly SearchAttributeSpec[] = CADENZA_SEARCH_ATTRIBUTES): Promise<SearchAttributesResult> {
  const namespace = settings.namespace;
  let listed: Awaited<ReturnType<OperatorService['listSearchAttributes']>>;
  try {
    listed = await connection.operatorService.listSearchAttributes({ namespace });
  } catch (error) {
    const refusal = explainRefusal(settings, error, { call: 'ListSearchAttributes' });
    throw new InfraError(`could not list the search attributes of namespace ${namespace} (Cadenza needs ${wanted.map((attribute) => `${attribute.name} (${attribute.type})`).join(', ')}): ${refusal.message}`, `${refusal.hint} If the attributes are there already, the worker needs read access to them; else ${howToAdd(namespace, wanted)}`);
  }
  const existing = new Map<string, number>([...Object.entries(listed.systemAttributes ?? {}), ...Object.entries(listed.customAttributes ?? {})].map(([name, type]) => [name, Number(type)]));
  const wrongType = wanted.filter((attribute) => existing.has(attribute.name) && existing.get(attribute.name) !== attribute.api);
  if (wrongType.length) {
    const found = wrongType.map((attribute) => `${attribute.name} is ${typeName(existing.get(attribute.name))}, Cadenza needs ${attribute.type}`).join('; ');
    throw new InfraError(`namespace ${namespace} on ${settings.address} has search attributes of the wrong type: ${found}.`, `search attributes cannot change type: use another namespace (CADENZA_NAMESPACE), or have an administrator remove them (temporal operator search-attribute remove --namespace ${namespace} ${wrongType.map((attribute) => `--name ${attribute.name}`).join(' ')}) so Cadenza can add them as ${wrongType.map((attribute) => `${attribute.name}=${attribute.type}`).join(', ')}.`);
  }
  const present = wanted.filter((attribute) => existing.has(attribute.name)).map((attribute) => attribute.name);
  const missing = wanted.filter((attribute) => !existing.has(attribute.name));
  if (!missing.length) return { added: [], present };
  try {
    await connection.operatorService.addSearchAttributes({ namespace, searchAttributes: Object.fromEntries(missing.map((attribute) => [attribute.name, attribute.api])) });
  } catch (error) {
    // Two workers starting at once: the other one may have added them in between.
    const again = await connection.operatorService.listSearchAttributes({ namespace }).catch(() => null);
    if (again && missing.every((attribute) => again.customAttributes?.[attribute.name] === attribute.api)) return { added: [], present: wanted.map((attribute) => attribute.name) };
    const refusal = explainRefusal(settings, error, { call: 'AddSearchAttributes' });
    throw new InfraError(
      `namespace ${namespace} lacks Cadenza's search attributes ${missing.map((attribute) => `${attribute.name} (${attribute.type})`).join(', ')}, and the server refused to add them: ${refusal.message}`,
      howToAdd(namespace, missing),
    );
  }
  return { added: missing.map((attribute) => attribute.name), present };
}
