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

/**
 * A model, tensor or config file is malformed or unsupported. Names the file and, where one is involved, the tensor
 * (or config key), so the user can tell which of many shards or tensors is at fault.
 */
export class FormatError extends RecurformerError {
  constructor(
    readonly file: string,
    message: string,
    hint = '',
    readonly tensor?: string,
  ) {
    super(`${file}${tensor !== undefined ? `: tensor '${tensor}'` : ''}: ${message}`, hint);
  }
}

/** A tokenizer file is malformed or unsupported, or a token id / piece is outside the vocabulary. */
export class TokenizerError extends RecurformerError {
  constructor(
    message: string,
    hint = '',
    readonly file?: string,
    readonly tokenId?: number,
  ) {
    super(file !== undefined ? `${file}: ${message}` : message, hint);
  }
}
