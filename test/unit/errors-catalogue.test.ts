import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ERROR_CATALOGUE, EXIT_FAILURE, EXIT_USAGE, NeuwerkError, type ErrorCode } from '../../src/errors.js';

describe('the error catalogue', () => {
  for (const code of Object.keys(ERROR_CATALOGUE) as ErrorCode[]) {
    it(`${code} has a stable code, an exit code of DESIGN §7 and an HTTP error status`, () => {
      const error = new NeuwerkError(code, 'message for the operator', { actions: ['do this'] });
      assert.match(code, /^NW_ERR_[A-Z_]+$/);
      assert.ok([EXIT_FAILURE, EXIT_USAGE].includes(error.exitCode), `exit code ${error.exitCode}`);
      assert.ok(error.httpStatus >= 400 && error.httpStatus <= 599, `status ${error.httpStatus}`);
      assert.deepEqual(error.toJSON(), { error: 'message for the operator', code });
      assert.deepEqual(error.actions, ['do this']);
    });
  }

  it('usage errors exit 2 and failures exit 1', () => {
    assert.equal(new NeuwerkError('NW_ERR_USAGE', 'x').exitCode, 2);
    assert.equal(new NeuwerkError('NW_ERR_CONFIG_INVALID', 'x').exitCode, 2);
    assert.equal(new NeuwerkError('NW_ERR_ADDRESS_IN_USE', 'x').exitCode, 1);
    assert.equal(new NeuwerkError('NW_ERR_NO_LEADER', 'x').httpStatus, 503);
    assert.equal(new NeuwerkError('NW_ERR_HTTP_BODY_TOO_LARGE', 'x').httpStatus, 413);
  });
});
