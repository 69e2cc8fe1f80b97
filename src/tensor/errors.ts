/**
 * Typed errors. Every error names where it happened (op, file, tensor, argument or token), what was expected and
 * what was found, and carries a hint. The library throws; only the CLI entry prints and sets the exit code.
 */
export class RecurformerError extends Error {
  readonly hint: string;
  constructor(message: string, hint = '') {
    super(hint ? `${message}\n  hint: ${hint}` : message);
    this.name = new.target.name;
    this.hint = hint;
  }
}

/** A tensor argument has the wrong shape or rank. */
export class ShapeError extends RecurformerError {
  constructor(
    readonly op: string,
    readonly arg: string,
    readonly expected: string,
    readonly actual: readonly number[] | string,
    hint = '',
  ) {
    super(`${op}: ${arg} has shape ${typeof actual === 'string' ? actual : `[${actual.join(', ')}]`}, expected ${expected}`, hint);
  }
}

/** A value has the wrong type (for example an integer tensor where floats are required). */
export class DTypeError extends RecurformerError {
  constructor(readonly op: string, readonly arg: string, readonly expected: string, readonly actual: string, hint = '') {
    super(`${op}: ${arg} has dtype ${actual}, expected ${expected}`, hint);
  }
}

/** An argument is out of its valid range (an index, a token id, a hyperparameter). */
export class ArgumentError extends RecurformerError {
  constructor(readonly op: string, readonly arg: string, message: string, hint = '') {
    super(`${op}: ${arg} ${message}`, hint);
  }
}

/** Autograd misuse: backward on a non-scalar, on a tensor that needs no grad, or twice through a freed graph. */
export class AutogradError extends RecurformerError {}

/** The requested backend cannot be used. */
export class BackendError extends RecurformerError {}
