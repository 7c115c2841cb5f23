import type { Replicator } from '../../cluster/replicator.js';
import type { PolicyEnforcement } from '../../dataplane/policy-state.js';
import { NeuwerkError } from '../../errors.js';
import { compilePolicy, parsePolicy, parsePolicyYaml, POLICY_JSON_SCHEMA, policyToYaml, type PolicyDocument } from '../../policy/index.js';
import type { RouteSchemas } from '../openapi.js';
import type { Logger } from '../../log/logger.js';
import type { Router } from '../router.js';

const PUT_RESPONSE_SCHEMA = {
  type: 'object',
  required: ['version', 'active'],
  properties: {
    version: { type: 'integer', description: 'The Raft index that set the policy.' },
    active: { type: 'boolean', description: 'True: the policy is enforced on the node that answered.' },
    source_groups: { type: 'integer' },
    rules: { type: 'integer' },
  },
} as const;

export const POLICY_SCHEMAS: RouteSchemas = {
  'GET /api/v1/policy': {
    query: { format: { schema: { type: 'string', enum: ['json', 'yaml'], default: 'json' }, description: 'yaml: the document as YAML (application/yaml).' } },
    response: POLICY_JSON_SCHEMA as object,
    responseMediaTypes: { 'application/yaml': { type: 'string', description: 'With ?format=yaml: the same document as YAML.' } },
  },
  'PUT /api/v1/policy': { request: POLICY_JSON_SCHEMA as object, requestMediaTypes: ['application/yaml'], response: PUT_RESPONSE_SCHEMA },
};

/** The singleton policy document (DESIGN §6, §8). */
export function addPolicyRoutes(router: Router, replicator: Replicator, enforcement: PolicyEnforcement, logger: Logger): void {
  router.add({
    method: 'GET',
    path: '/api/v1/policy',
    access: 'read',
    summary: 'The policy document (?format=yaml for YAML); its version is in x-neuwerk-policy-version.',
    handler: async (ctx) => {
      await replicator.linearizableRead();
      const record = replicator.stateMachine.policy();
      if (record === null) throw new NeuwerkError('NW_ERR_NOT_FOUND', 'no policy has been set yet');
      const headers = { 'x-neuwerk-policy-version': String(record.version) };
      const format = ctx.query.get('format') ?? 'json';
      if (format === 'yaml') {
        return { status: 200, raw: policyToYaml(record.document as unknown as PolicyDocument), headers: { ...headers, 'content-type': 'application/yaml; charset=utf-8' } };
      }
      if (format !== 'json') throw new NeuwerkError('NW_ERR_VALIDATION', `format: ${JSON.stringify(format)} is not one of json, yaml`);
      return { status: 200, body: record.document, headers };
    },
  });
  router.add({
    method: 'PUT',
    path: '/api/v1/policy',
    access: 'admin',
    summary: 'Validate, compile and commit a policy (JSON, or YAML with Content-Type application/yaml); answers once it is active on this node.',
    handler: async (ctx) => {
      const contentType = String(ctx.headers['content-type'] ?? 'application/json');
      const document = /yaml/i.test(contentType) ? parsePolicyYaml(await ctx.readText()) : parsePolicy(await ctx.readJson());
      const compileStarted = performance.now();
      const compiled = compilePolicy(document);
      // Applied on this node in a moment: spare it a second parse and compile of the same document.
      enforcement.prepare(document, compiled, performance.now() - compileStarted);
      const identity = ctx.identity;
      const result = await replicator.propose({
        v: 1,
        type: 'policy.set',
        document: document as unknown as Record<string, unknown>,
        set_by: identity?.sub ?? 'unknown',
        set_at: new Date().toISOString(),
      });
      if (result.type !== 'policy.set') throw new NeuwerkError('NW_ERR_INTERNAL', 'unexpected apply result');
      const active = enforcement.version >= result.version;
      logger.info({ audit: true, actor: identity?.sub ?? 'unknown', action: 'policy.set', version: result.version, previous_version: result.previousVersion, rules: compiled.stats.rules }, 'audit: policy.set');
      return {
        status: 200,
        body: { version: result.version, active, source_groups: compiled.stats.sourceGroups, rules: compiled.stats.rules },
      };
    },
  });
}
