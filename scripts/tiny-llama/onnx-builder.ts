/**
 * A small helper over onnx-proto's generated protobuf classes: add nodes and initializers by name, then encode
 * a ModelProto. Only what the tiny Llama graph needs (float32 and int64 tensors, int/ints/float attributes).
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
const { DataType } = onnx.TensorProto;
const { AttributeType } = onnx.AttributeProto;

export type Attr = number | number[] | { float: number };
export type Dim = number | string;

export class GraphBuilder {
  private readonly nodes: onnxProto.onnx.INodeProto[] = [];
  private readonly initializers: onnxProto.onnx.ITensorProto[] = [];
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private counter = 0;
  private readonly constants = new Map<string, string>();

  /** Add a node; returns its output names (one unless `outputs` > 1). */
  op(type: string, inputs: string[], attrs: Record<string, Attr> = {}, outputs = 1): string[] {
    const id = this.counter++;
    const names = Array.from({ length: outputs }, (_, i) => `${type.toLowerCase()}_${id}${outputs > 1 ? `_${i}` : ''}`);
    this.nodes.push({
      name: `${type}_${id}`,
      opType: type,
      input: inputs,
      output: names,
      attribute: Object.entries(attrs).map(([name, v]) =>
        typeof v === 'number'
          ? { name, type: AttributeType.INT, i: v }
          : Array.isArray(v)
            ? { name, type: AttributeType.INTS, ints: v }
            : { name, type: AttributeType.FLOAT, f: v.float },
      ),
    });
    return names;
  }

  /** Single-output shorthand. */
  one(type: string, inputs: string[], attrs: Record<string, Attr> = {}): string {
    return this.op(type, inputs, attrs)[0]!;
  }

  floatTensor(name: string, dims: number[], data: Float32Array): string {
    if (data.length !== dims.reduce((a, b) => a * b, 1)) throw new Error(`${name}: data does not match ${dims}`);
    this.initializers.push({
      name,
      dims,
      dataType: DataType.FLOAT,
      rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    return name;
  }

  /** An int64 constant (scalar when `scalar`), shared between nodes that use the same values. */
  int64(values: number[], scalar = false): string {
    const key = `i64:${scalar}:${values.join(',')}`;
    const known = this.constants.get(key);
    if (known) return known;
    const name = `const_i64_${this.constants.size}`;
    const data = BigInt64Array.from(values.map(BigInt));
    this.initializers.push({
      name,
      dims: scalar ? [] : [values.length],
      dataType: DataType.INT64,
      rawData: new Uint8Array(data.buffer),
    });
    this.constants.set(key, name);
    return name;
  }

  /** A float32 scalar constant. */
  float(value: number): string {
    const key = `f32:${value}`;
    const known = this.constants.get(key);
    if (known) return known;
    const name = `const_f32_${this.constants.size}`;
    this.floatTensor(name, [], Float32Array.of(value));
    this.constants.set(key, name);
    return name;
  }

  input(name: string, type: 'float' | 'int64', dims: Dim[]): string {
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** Name a graph output: an Identity from `from` gives it the public name. */
  output(name: string, from: string, type: 'float' | 'int64', dims: Dim[]): void {
    this.nodes.push({ name: `out_${name}`, opType: 'Identity', input: [from], output: [name] });
    this.outputs.push(valueInfo(name, type, dims));
  }

  encode(producer: string, opset: number): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: producer,
      opsetImport: [{ domain: '', version: opset }],
      graph: {
        name: 'main',
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

function valueInfo(name: string, type: 'float' | 'int64', dims: Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: type === 'float' ? DataType.FLOAT : DataType.INT64,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}
