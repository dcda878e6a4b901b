package ecom_lakehouse.jvm;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.catalyst.TableIdentifier;
import org.apache.spark.sql.catalyst.analysis.NamespaceAlreadyExistsException;
import org.apache.spark.sql.catalyst.analysis.NoSuchNamespaceException;
import org.apache.spark.sql.catalyst.analysis.NonEmptyNamespaceException;
import org.apache.spark.sql.catalyst.analysis.NoSuchTableException;
import org.apache.spark.sql.catalyst.analysis.TableAlreadyExistsException;
import org.apache.spark.sql.catalyst.catalog.CatalogStorageFormat;
import org.apache.spark.sql.catalyst.catalog.CatalogTable;
import org.apache.spark.sql.catalyst.catalog.CatalogTable$;
import org.apache.spark.sql.catalyst.catalog.CatalogTableType;
import org.apache.spark.sql.connector.catalog.Column;
import org.apache.spark.sql.connector.catalog.Identifier;
import org.apache.spark.sql.connector.catalog.StagedTable;
import org.apache.spark.sql.connector.catalog.Table;
import org.apache.spark.sql.connector.catalog.TableCatalog;
import org.apache.spark.sql.connector.catalog.TableChange;
import org.apache.spark.sql.connector.expressions.Transform;
import org.apache.spark.sql.delta.catalog.DeltaCatalog;
import org.apache.spark.sql.types.StructType;
import scala.Option;

/**
 * The local lakehouse as {@code spark_catalog}: {@code spark_catalog.<schema>.<table>} is the Delta table in the folder
 * {@code <root>/<schema>/<table>}, where root is the session's {@code ecom.lakehouse.root}.
 *
 * <p>The folder is the metastore. Nothing is registered anywhere, so a table exists for every process and every
 * session the moment its files do, and two sessions of one Spark (two commands on a shared server) with different
 * roots each see their own tables, at the same time. A session without a root, and every name this catalog does not
 * map to a folder (temporary views, other namespaces), falls through to Delta's catalog over Spark's built-in one.
 *
 * <p>Tables are created by writing them ({@code saveAsTable}, {@code CREATE OR REPLACE TABLE ... AS SELECT}); SQL
 * {@code CREATE TABLE} without a query takes Spark's v1 route for the session catalog and does not reach this class.
 * Dropping or renaming a folder's table through SQL is refused: delete or move the folder.
 */
public class LakehouseCatalog extends DeltaCatalog {
  /** The session conf naming the lakehouse folder; the Python side sets it (ecom_lakehouse.io.tables). */
  public static final String ROOT_CONF = "ecom.lakehouse.root";

  private String root() {
    String root = spark().conf().get(ROOT_CONF, "");
    return root == null || root.isEmpty() ? null : root;
  }

  private Path namespacePath(String[] namespace) {
    String root = root();
    // delta.`/a/folder` is Delta's path identifier: the folder itself, whatever the session's lakehouse.
    if (root == null || namespace.length != 1 || namespace[0].equalsIgnoreCase("delta")) {
      return null;
    }
    return new Path(root, namespace[0].toLowerCase(Locale.ROOT));
  }

  private Path tablePath(Identifier ident) {
    Path namespace = namespacePath(ident.namespace());
    return namespace == null ? null : new Path(namespace, ident.name().toLowerCase(Locale.ROOT));
  }

  private FileSystem fileSystem(Path path) {
    try {
      return path.getFileSystem(spark().sparkContext().hadoopConfiguration());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private boolean exists(Path path) {
    try {
      return path != null && fileSystem(path).exists(path);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private boolean isDeltaTable(Path path) {
    return path != null && exists(new Path(path, "_delta_log"));
  }

  /** Delta's path identifier, {@code delta.`/abs/path`}: Delta creates and replaces the table in that folder. */
  private static Identifier byPath(Path path) {
    return Identifier.of(new String[] {"delta"}, path.toString());
  }

  /** The table as Delta loads a catalog table (streaming reads and writes by name need one), at its folder. */
  private Table loadFolderTable(Identifier ident, Path path) {
    CatalogTable$ table = CatalogTable$.MODULE$;
    TableIdentifier name =
        new TableIdentifier(path.getName(), Option.apply(path.getParent().getName()), Option.apply(name()));
    CatalogStorageFormat storage =
        CatalogStorageFormat.empty()
            .copy(Option.apply(path.toUri()), Option.empty(), Option.empty(), Option.empty(), false,
                scala.collection.immutable.Map$.MODULE$.empty());
    CatalogTable metadata =
        table.apply(name, CatalogTableType.EXTERNAL(), storage, new StructType(), Option.apply("delta"),
            table.apply$default$6(), table.apply$default$7(), table.apply$default$8(), table.apply$default$9(),
            table.apply$default$10(), table.apply$default$11(), table.apply$default$12(), table.apply$default$13(),
            table.apply$default$14(), table.apply$default$15(), table.apply$default$16(), table.apply$default$17(),
            table.apply$default$18(), table.apply$default$19(), table.apply$default$20(), table.apply$default$21());
    return loadCatalogTable(ident, metadata);
  }

  /** The properties of a table to create in its folder: a LOCATION elsewhere is an error, not silently ignored. */
  private static Map<String, String> inFolder(Path path, Map<String, String> properties) {
    Map<String, String> copy = new HashMap<>(properties);
    String location = copy.remove(TableCatalog.PROP_LOCATION);
    copy.remove(TableCatalog.PROP_EXTERNAL);
    if (location != null && !new Path(location).toUri().getPath().equals(path.toUri().getPath())) {
      throw new IllegalArgumentException(
          "a table of the local lakehouse lives in its folder " + path + ", not at " + location);
    }
    return copy;
  }

  @Override
  public Table loadTable(Identifier ident) {
    Path path = tablePath(ident);
    return isDeltaTable(path) ? loadFolderTable(ident, path) : super.loadTable(ident);
  }

  @Override
  public Table loadTable(Identifier ident, String version) {
    Path path = tablePath(ident);
    return isDeltaTable(path) ? super.loadTable(byPath(path), version) : super.loadTable(ident, version);
  }

  @Override
  public Table loadTable(Identifier ident, long timestamp) {
    Path path = tablePath(ident);
    return isDeltaTable(path) ? super.loadTable(byPath(path), timestamp) : super.loadTable(ident, timestamp);
  }

  @Override
  public boolean tableExists(Identifier ident) {
    return isDeltaTable(tablePath(ident)) || super.tableExists(ident);
  }

  @Override
  public Table createTable(
      Identifier ident, StructType schema, Transform[] partitions, Map<String, String> properties) {
    Path path = tablePath(ident);
    return path == null
        ? super.createTable(ident, schema, partitions, properties)
        : super.createTable(byPath(path), schema, partitions, inFolder(path, properties));
  }

  @Override
  public Table createTable(
      Identifier ident, Column[] columns, Transform[] partitions, Map<String, String> properties) {
    Path path = tablePath(ident);
    return path == null
        ? super.createTable(ident, columns, partitions, properties)
        : super.createTable(byPath(path), columns, partitions, inFolder(path, properties));
  }

  @Override
  public StagedTable stageCreate(
      Identifier ident, StructType schema, Transform[] partitions, Map<String, String> properties) {
    Path path = tablePath(ident);
    return path == null
        ? super.stageCreate(ident, schema, partitions, properties)
        : super.stageCreate(byPath(path), schema, partitions, inFolder(path, properties));
  }

  @Override
  public StagedTable stageReplace(
      Identifier ident, StructType schema, Transform[] partitions, Map<String, String> properties) {
    Path path = tablePath(ident);
    return path == null
        ? super.stageReplace(ident, schema, partitions, properties)
        : super.stageReplace(byPath(path), schema, partitions, inFolder(path, properties));
  }

  @Override
  public StagedTable stageCreateOrReplace(
      Identifier ident, StructType schema, Transform[] partitions, Map<String, String> properties) {
    Path path = tablePath(ident);
    return path == null
        ? super.stageCreateOrReplace(ident, schema, partitions, properties)
        : super.stageCreateOrReplace(byPath(path), schema, partitions, inFolder(path, properties));
  }

  @Override
  public Table alterTable(Identifier ident, TableChange... changes) {
    Path path = tablePath(ident);
    return isDeltaTable(path) ? super.alterTable(byPath(path), changes) : super.alterTable(ident, changes);
  }

  @Override
  public boolean dropTable(Identifier ident) {
    Path path = tablePath(ident);
    if (isDeltaTable(path)) {
      throw new UnsupportedOperationException(
          "the local lakehouse's table " + ident + " is the folder " + path + ": delete the folder to drop it");
    }
    return super.dropTable(ident);
  }

  @Override
  public boolean purgeTable(Identifier ident) {
    return dropTable(ident);
  }

  @Override
  public void renameTable(Identifier from, Identifier to)
      throws NoSuchTableException, TableAlreadyExistsException {
    Path path = tablePath(from);
    if (isDeltaTable(path)) {
      throw new UnsupportedOperationException(
          "the local lakehouse's table " + from + " is the folder " + path + ": move the folder to rename it");
    }
    super.renameTable(from, to);
  }

  @Override
  public Identifier[] listTables(String[] namespace) throws NoSuchNamespaceException {
    List<Identifier> tables = new ArrayList<>();
    Path path = namespacePath(namespace);
    if (exists(path)) {
      try {
        for (FileStatus child : fileSystem(path).listStatus(path)) {
          if (child.isDirectory() && isDeltaTable(child.getPath())) {
            tables.add(Identifier.of(namespace, child.getPath().getName()));
          }
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    } else if (!super.namespaceExists(namespace)) {
      throw new NoSuchNamespaceException(namespace);
    }
    if (super.namespaceExists(namespace)) {
      tables.addAll(Arrays.asList(super.listTables(namespace)));
    }
    return tables.toArray(new Identifier[0]);
  }

  @Override
  public String[][] listNamespaces() throws NoSuchNamespaceException {
    List<String[]> namespaces = new ArrayList<>(Arrays.asList(super.listNamespaces()));
    String root = root();
    if (root != null && exists(new Path(root))) {
      try {
        for (FileStatus child : fileSystem(new Path(root)).listStatus(new Path(root))) {
          String name = child.getPath().getName();
          boolean listed = namespaces.stream().anyMatch(ns -> ns.length == 1 && ns[0].equalsIgnoreCase(name));
          if (child.isDirectory() && !name.startsWith("_") && !name.startsWith(".") && !listed) {
            namespaces.add(new String[] {name});
          }
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return namespaces.toArray(new String[0][]);
  }

  @Override
  public boolean namespaceExists(String[] namespace) {
    return exists(namespacePath(namespace)) || super.namespaceExists(namespace);
  }

  @Override
  public Map<String, String> loadNamespaceMetadata(String[] namespace) throws NoSuchNamespaceException {
    Path path = namespacePath(namespace);
    if (!exists(path)) {
      return super.loadNamespaceMetadata(namespace);
    }
    Map<String, String> metadata = new HashMap<>();
    metadata.put("location", path.toUri().toString());
    return metadata;
  }

  @Override
  public void createNamespace(String[] namespace, Map<String, String> metadata)
      throws NamespaceAlreadyExistsException {
    Path path = namespacePath(namespace);
    if (path == null) {
      super.createNamespace(namespace, metadata);
      return;
    }
    if (exists(path)) {
      throw new NamespaceAlreadyExistsException(namespace);
    }
    try {
      fileSystem(path).mkdirs(path);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  @Override
  public boolean dropNamespace(String[] namespace, boolean cascade)
      throws NoSuchNamespaceException, NonEmptyNamespaceException {
    Path path = namespacePath(namespace);
    if (exists(path)) {
      throw new UnsupportedOperationException(
          "the local lakehouse's schema " + String.join(".", namespace) + " is the folder " + path
              + ": delete the folder to drop it");
    }
    return super.dropNamespace(namespace, cascade);
  }
}
